# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter dbdr.backup.backup_iam_policy: the least-privilege IAM policy of a persona
(documented in backup_iam_policy.yml next to this file)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._iam import ALL_CLUSTERS, policy_document


def backup_iam_policy(bucket, persona, prefix="", clusters=ALL_CLUSTERS, partition="aws", kms_key_arn=None,
                      region=None, governance_bypass=False, replication_role_arn=None):
    """The policy document (a dict) of `persona` for the repository in `bucket` under `prefix`."""
    try:
        return policy_document(persona, bucket, prefix=prefix, clusters=clusters, partition=partition,
                               kms_key_arn=kms_key_arn, region=region, governance_bypass=governance_bypass,
                               replication_role_arn=replication_role_arn)
    except DbdrError as exc:
        raise AnsibleFilterError("dbdr.backup.backup_iam_policy: %s" % exc.message)


class FilterModule(object):
    def filters(self):
        return {"backup_iam_policy": backup_iam_policy}
