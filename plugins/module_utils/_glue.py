# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module's main() does the same way: required libraries and signals."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import signal

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.dbdr.backup.plugins.module_utils import _aws, _gpg, _pg


class Interrupted(BaseException):
    """A signal (Ansible timeout, systemd stop): unwind so that the cleanup runs."""


def check_libraries(module, gnupg=True, postgres=True):
    """Fail the task with the standard message when a Python library it needs is missing."""
    if postgres and not _pg.HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(_pg.PSYCOPG2_IMPORT_ERROR))
    if gnupg and not _gpg.HAS_GNUPG:
        module.fail_json(msg=missing_required_lib("python-gnupg"), exception=str(_gpg.GNUPG_IMPORT_ERROR))
    if module.params["repository"]["type"] == "s3":
        check_boto3(module)


def check_boto3(module):
    """Fail the task with the standard message when boto3/botocore are missing."""
    if not _aws.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=str(_aws.BOTO3_IMPORT_ERROR))


def raise_on_signals(signals=(signal.SIGTERM, signal.SIGHUP, signal.SIGINT)):
    """Turn the first of these signals into Interrupted; later ones are ignored, so that they
    cannot break the cleanup the first one started."""
    received = []

    def handler(signum, frame):
        if not received:
            received.append(signum)
            raise Interrupted("interrupted by signal %d" % signum)
    for signum in signals:
        signal.signal(signum, handler)
