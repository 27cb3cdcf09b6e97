# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  encryption:
    description:
      - GPG public-key encryption of every stored object (AES256, no GPG compression).
    type: dict
    default: {type: gpg}
    suboptions:
      type:
        description:
          - V(gpg) encrypts to O(encryption.recipients); V(none) stores plain (compressed) dumps.
          - Unencrypted backups to S3 also need O(encryption.allow_unencrypted=true).
        type: str
        default: gpg
        choices: [ gpg, none ]
      recipients:
        description:
          - Public keys to encrypt to, each a fingerprint (or key id) in the keyring of O(encryption.gnupghome),
            or the path of a public key file (used with C(--recipient-file); the keyring is not changed).
          - Missing, expired or revoked keys are refused before anything is written.
        type: list
        elements: str
        default: []
      gnupghome:
        description: GnuPG home directory holding the keyring. Defaults to C($GNUPGHOME) or C(~/.gnupg).
        type: path
      passphrase:
        description: Passphrase of the private key, for modules that decrypt.
        type: str
      passphrase_file:
        description: File holding that passphrase, for modules that decrypt.
        type: path
      allow_unencrypted:
        description: Confirms that O(encryption.type=none) is wanted for an S3 repository.
        type: bool
        default: false
requirements:
  - gpg (GnuPG 2.2 or later) and python-gnupg on the managed host, for O(encryption.type=gpg)
'''
