# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPG: which keys we encrypt to, and the gpg argument lists for the streaming pipeline.

python-gnupg inspects keys (list_keys / scan_keys). The bulk encryption itself runs gpg as a
pipeline stage because python-gnupg collects a command's output in memory, which would
break the flat-memory promise for multi-gigabyte dumps.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import shutil
import time

from ansible_collections.dbdr.backup.plugins.module_utils._errors import EncryptionError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import Stage, clean_env

try:
    import gnupg
    HAS_GNUPG = True
    GNUPG_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_GNUPG = False
    GNUPG_IMPORT_ERROR = exc

CIPHER = "AES256"
_FPR_RE = re.compile(r"^(0x)?[0-9A-Fa-f]{16,40}$")


class Recipient:
    """A public key we encrypt to, pinned by fingerprint."""

    def __init__(self, fingerprint, uids, expires, source, key_file=None):
        self.fingerprint = fingerprint
        self.uids = list(uids)
        self.expires = expires
        self.source = source
        self.key_file = key_file

    def to_dict(self):
        return {"fingerprint": self.fingerprint, "uids": self.uids,
                "expires": self.expires, "source": self.source}


def gpg_binary():
    path = shutil.which("gpg") or shutil.which("gpg2")
    if not path:
        raise EncryptionError("gpg not found on PATH; install gnupg")
    return path


def keyring_dir(gnupghome):
    """The keyring directory: the given one (which must exist), else $GNUPGHOME or ~/.gnupg."""
    if gnupghome:
        if not os.path.isdir(gnupghome):
            raise InputError("encryption.gnupghome %r is not a directory" % (gnupghome,))
        return gnupghome
    return os.environ.get("GNUPGHOME") or os.path.expanduser("~/.gnupg")


def _check_usable(key, described, now):
    fpr = key.get("fingerprint")
    validity = key.get("trust", "")
    if validity == "r":
        raise EncryptionError("GPG recipient %s (%s) is revoked" % (described, fpr))
    expires = key.get("expires") or ""
    if validity == "e" or (expires and int(expires) <= now):
        when = time.strftime("%Y-%m-%d", time.gmtime(int(expires))) if expires else "?"
        raise EncryptionError("GPG recipient %s (%s) expired on %s" % (described, fpr, when))
    if "E" not in (key.get("cap") or ""):
        raise EncryptionError("GPG recipient %s (%s) has no usable encryption subkey (expired, revoked or missing)"
                              % (described, fpr))


def resolve_recipients(recipients, gnupghome=None):
    """Look every recipient up, refuse missing/expired/revoked keys, pin fingerprints.

    A recipient is a fingerprint or key id in the keyring, or the path of a public key file
    (encrypted to with --recipient-file, so the keyring is not changed).
    """
    if not recipients:
        raise InputError("encryption.recipients is empty: name at least one GPG public key "
                         "(fingerprint or key file), or set encryption.type: none explicitly")
    home = keyring_dir(gnupghome)
    gpg = gnupg.GPG(gpgbinary=gpg_binary(), gnupghome=home, env=clean_env())
    now = int(time.time())
    resolved = []
    for recipient in recipients:
        recipient = str(recipient).strip()
        if os.path.sep in recipient or os.path.isfile(recipient):
            if not os.path.isfile(recipient):
                raise EncryptionError("GPG recipient key file %r does not exist" % (recipient,))
            keys = gpg.scan_keys(recipient)
            if len(keys) != 1:
                raise EncryptionError("GPG recipient key file %r holds %d keys; expected exactly one public key"
                                      % (recipient, len(keys)))
            key = keys[0]
            _check_usable(key, repr(recipient), now)
            resolved.append(Recipient(key["fingerprint"], key.get("uids", []), key.get("expires") or None,
                                      "file", key_file=os.path.abspath(recipient)))
            continue
        if not _FPR_RE.match(recipient):
            raise InputError("GPG recipient %r is neither a fingerprint/key id nor an existing key file" % (recipient,))
        wanted = recipient.upper().replace("0X", "")
        keys = [k for k in gpg.list_keys() if k.get("fingerprint", "").upper().endswith(wanted)]
        if not keys:
            raise EncryptionError("GPG recipient %s not found in keyring %s" % (recipient, home))
        if len(keys) > 1:
            raise EncryptionError("GPG recipient %s is ambiguous in keyring %s; give the full fingerprint" % (recipient, home))
        _check_usable(keys[0], recipient, now)
        resolved.append(Recipient(keys[0]["fingerprint"], keys[0].get("uids", []), keys[0].get("expires") or None, "keyring"))
    return home, resolved


def encrypt_stage(gnupghome, recipients):
    argv = [gpg_binary(), "--batch", "--no-tty", "--quiet", "--homedir", gnupghome,
            # The fingerprint is the trust decision; no web of trust is consulted.
            "--trust-model", "always", "--no-auto-key-locate",
            # encrypt-to lines of a gpg.conf would add recipients the manifest does not record.
            "--no-encrypt-to",
            "--compress-algo", "none", "--cipher-algo", CIPHER, "--encrypt", "--output", "-"]
    for recipient in recipients:
        if recipient.key_file:
            argv.extend(["--recipient-file", recipient.key_file])
        else:
            argv.extend(["--recipient", recipient.fingerprint])
    return Stage("gpg encrypt", argv, env=clean_env())


def check_secret_key(recipients, gnupghome=None):
    """The home directory to decrypt with, after making sure it holds a secret key for one of
    the fingerprints a backup was encrypted to (the manifest records them)."""
    home = keyring_dir(gnupghome)
    wanted = [str(r).upper() for r in recipients if r]
    if not wanted:
        raise EncryptionError("the backup is marked as GPG-encrypted but its manifest names no recipient")
    gpg = gnupg.GPG(gpgbinary=gpg_binary(), gnupghome=home, env=clean_env())
    available = set()
    for key in gpg.list_keys(secret=True):
        available.add(key.get("fingerprint", "").upper())
        for sub in key.get("subkey_info", {}).keys():
            available.add(str(sub).upper())
    if not any(any(a and a.endswith(w[-16:]) for a in available) for w in wanted):
        raise EncryptionError("none of the keys this backup is encrypted to (%s) has a secret key in %s; "
                              "import the private key there or point encryption.gnupghome at the right keyring"
                              % (", ".join(wanted), home))
    return home


def decrypt_stage(gnupghome, passphrase=None):
    """A gpg --decrypt stage; a passphrase reaches gpg through a pipe (never argv or env).

    The caller closes the passphrase pipe with release_stage_fds() once the stage started."""
    argv = [gpg_binary(), "--batch", "--no-tty", "--quiet", "--homedir", gnupghome, "--no-auto-key-locate",
            "--decrypt", "--output", "-"]
    fds = ()
    if passphrase is not None:
        read_fd, write_fd = os.pipe()
        data = passphrase.encode("utf-8") + b"\n"
        try:
            # Fits in the pipe buffer: written at once, read by gpg when it needs it.
            os.write(write_fd, data)
        finally:
            os.close(write_fd)
        argv[-3:-3] = ["--pinentry-mode", "loopback", "--passphrase-fd", str(read_fd)]
        fds = (read_fd,)
    return Stage("gpg decrypt", argv, env=clean_env(), pass_fds=fds)


def release_stage_fds(stage):
    """Close the parent's copies of descriptors handed to a stage (a decrypt passphrase pipe)."""
    for fd in stage.pass_fds:
        try:
            os.close(fd)
        except OSError:
            pass


def read_passphrase(spec):
    """The passphrase of an `encryption` option: given, or read from passphrase_file, or None."""
    if spec.get("passphrase"):
        return spec["passphrase"]
    path = spec.get("passphrase_file")
    if path:
        try:
            with open(path, "r") as handle:
                return handle.read().rstrip("\r\n")
        except (IOError, OSError) as exc:
            raise InputError("encryption.passphrase_file %r cannot be read: %s" % (path, exc.strerror))
    return None
