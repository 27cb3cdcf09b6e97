# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option blocks shared by the modules; each matches a doc fragment of the same name."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.dbdr.backup.plugins.module_utils._pg import ConnectionParams


def postgres_argspec():
    """community.postgresql's connection option names (doc fragment dbdr.backup.postgres)."""
    return dict(
        login_host=dict(type="str", default="", aliases=["host"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", default="postgres", aliases=["login"]),
        login_password=dict(type="str", default="", no_log=True),
        login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
        login_db=dict(type="str", default="postgres"),
        ssl_mode=dict(type="str", default="prefer",
                      choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]),
        ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=10),
    )


def repository_argspec():
    """doc fragment dbdr.backup.repository"""
    options = dict(
        type=dict(type="str", default="local", choices=["local", "s3"]),
        path=dict(type="path"),
        bucket=dict(type="str"),
        prefix=dict(type="str", default=""),
        storage_class=dict(type="str", choices=["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                                                "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY"]),
        sse=dict(type="str", choices=["AES256", "aws:kms"]),
        sse_kms_key_id=dict(type="str"),
    )
    # The S3 connection options, the same as the bucket modules take at the top level.
    options.update(aws_argspec())
    return dict(
        repository=dict(type="dict", required=True, options=options,
                        required_if=[("type", "local", ["path"]), ("type", "s3", ["bucket"])]),
        cluster=dict(type="str", required=True),
    )


def aws_argspec():
    """doc fragment dbdr.backup.aws: the repository's S3 connection options, at the top level of
    the bucket-management modules (s3_lifecycle, s3_replication)."""
    return dict(
        region=dict(type="str"),
        endpoint_url=dict(type="str"),
        profile=dict(type="str"),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
        session_token=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        retries=dict(type="int", default=5),
    )


def encryption_argspec():
    """doc fragment dbdr.backup.encryption"""
    return dict(
        encryption=dict(type="dict", default={"type": "gpg"}, options=dict(
            type=dict(type="str", default="gpg", choices=["gpg", "none"]),
            recipients=dict(type="list", elements="str", default=[]),
            gnupghome=dict(type="path"),
            passphrase=dict(type="str", no_log=True),
            passphrase_file=dict(type="path", no_log=False),
            allow_unencrypted=dict(type="bool", default=False),
        )),
    )


def compression_argspec():
    """doc fragment dbdr.backup.compression"""
    return dict(
        compression=dict(type="dict", default={"algorithm": "zstd"}, options=dict(
            algorithm=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
            level=dict(type="int"),
            threads=dict(type="int", default=2),
        )),
    )


def storage_module_argspec():
    """The option blocks of a module that reads or writes backups: connection, repository,
    encryption, compression."""
    spec = postgres_argspec()
    spec.update(repository_argspec())
    spec.update(encryption_argspec())
    spec.update(compression_argspec())
    return spec


def connection_params(params):
    """ConnectionParams from a module's validated parameters."""
    return ConnectionParams(
        host=params.get("login_host"), port=params.get("login_port"), user=params.get("login_user"),
        # libpq's own PGPASSWORD, when given instead of login_password, takes the same safe path
        # (a 0600 password file for the client tools) rather than leaking into every child.
        password=params.get("login_password") or os.environ.get("PGPASSWORD"),
        unix_socket=params.get("login_unix_socket"),
        ssl_mode=params.get("ssl_mode"), ca_cert=params.get("ca_cert"), login_db=params.get("login_db"),
        connect_timeout=params.get("connect_timeout"))


NOTIFY_EVENTS = ["verify_failed", "verify_ok", "rpo_breach", "rpo_ok", "size_anomaly"]


def monitoring_argspec():
    """doc fragment dbdr.backup.monitoring: webhook alerts and the Prometheus textfile."""
    return dict(
        notify=dict(type="dict", options=dict(
            url=dict(type="str", required=True, no_log=True),
            events=dict(type="list", elements="str", choices=NOTIFY_EVENTS,
                        default=["verify_failed", "rpo_breach", "size_anomaly"]),
            timeout=dict(type="int", default=10),
            headers=dict(type="dict", no_log=True),
            validate_certs=dict(type="bool", default=True),
        )),
        metrics_file=dict(type="path"),
    )
