#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_info
short_description: Backups, RPO status, size anomalies, bytes per class and storage cost of a dbdr.backup repository
version_added: 0.1.0
description:
  - Reads a cluster's repository (local or S3) and returns its backups, the newest complete and the newest
    verified-good backup, the RPO status against O(rpo_target), size anomalies, the bytes per GFS class and storage
    class, and a monthly storage cost estimate. It never changes anything in the repository.
  - The RPO age is the time since the data of the newest complete whole backup was taken (the newest snapshot of its
    databases, else its finish time). Partial backups (schema only, data only, some tables) and safety backups taken
    by M(dbdr.backup.restore) do not count. V(ok) up to O(rpo_target), V(warning) up to O(rpo_critical), V(critical)
    beyond it and when there is no backup at all.
  - A whole backup is a size anomaly when its size differs by more than O(size_anomaly_threshold) from the median
    of up to 5 previous whole backups of the same kind holding the same set of databases.
  - The GFS class of a backup is the C(dbdr-class) tag of its manifest on S3 (retention re-tags on promotion), else
    the class its manifest records.
  - The cost estimate covers storage only, see O(prices).
  - Can send alerts (O(notify)) for RPO breaches and size anomalies, and write a Prometheus textfile
    (O(metrics_file)). See docs/monitoring.md.
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.repository
  - dbdr.backup.monitoring
options:
  rpo_target:
    description: Recovery point objective in seconds; an older newest backup is a V(warning).
    type: int
    default: 86400
  rpo_critical:
    description: Age in seconds beyond which the RPO status is V(critical). Default twice O(rpo_target).
    type: int
  size_anomaly_threshold:
    description:
      - Relative size difference from the baseline above which a backup is an anomaly; V(0.5) flags a backup
        more than 50% larger or smaller than the median of the previous ones.
    type: float
    default: 0.5
  prices:
    description:
      - Price per GiB-month per storage class, overriding or adding to the defaults (upper-case class names such
        as V(STANDARD), V(GLACIER); a local repository's files are V(LOCAL)).
      - The defaults are the Amazon S3 list prices in USD for US East (N. Virginia), first 50 TB per month tier
        (aws.amazon.com/s3/pricing, the figures in force since late 2021, as of 2026-11) - V(STANDARD) 0.023,
        V(INTELLIGENT_TIERING) 0.023 (frequent access tier), V(STANDARD_IA) 0.0125, V(ONEZONE_IA) 0.01,
        V(GLACIER_IR) 0.004, V(GLACIER) 0.0036, V(DEEP_ARCHIVE) 0.00099, V(REDUCED_REDUNDANCY) 0.024, V(LOCAL) 0.
      - The estimate is storage only - requests, retrievals, transitions, data transfer, minimum storage durations
        and minimum object sizes, per-object archive overhead and Intelligent-Tiering monitoring are not included.
        Give your region's, your negotiated or your S3-compatible store's prices here.
    type: dict
  currency:
    description: Currency name shown with the estimate. It only labels the numbers; give O(prices) in that currency.
    type: str
    default: USD
  labels:
    description: List only backups whose labels include all of these (values compared as strings).
    type: dict
  gfs_class:
    description: List only backups of these GFS classes.
    type: list
    elements: str
    choices: [ daily, weekly, monthly, yearly ]
  since:
    description:
      - List only backups started at or after this time, an ISO 8601 timestamp with an explicit offset such as
        V(2026-11-20T03:00:00+00:00) or V(...Z).
    type: str
notes:
  - O(labels), O(gfs_class) and O(since) narrow the RV(backups) list only. RV(rpo), RV(newest_complete),
    RV(newest_verified_good), RV(bytes_by_class), RV(cost), RV(verifications) and RV(unreadable), the alerts and the
    metrics file always describe the whole repository of the cluster.
  - O(notify) sends V(rpo_breach) (status warning or critical), V(rpo_ok) and V(size_anomaly) (the newest complete
    backup is an anomaly) when listed in O(notify.events); the verification events are sent by
    M(dbdr.backup.backup_verify). A failed delivery is a warning, not a failure.
  - Reading an S3 repository needs C(s3:ListBucket), C(s3:GetObject) and C(s3:GetObjectTagging) only.
  - Check mode reads the repository and returns the same information, but sends no notification and does not write
    O(metrics_file).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads and reports as usual; no webhook is called and no metrics file is written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: RPO status, and the backups taken since November 16
  dbdr.backup.backup_info:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: postgres, region: eu-central-1}
    rpo_target: 86400
    since: "2026-11-16T00:00:00+00:00"
  register: info

- name: Fail when the newest backup is too old
  ansible.builtin.assert:
    that: info.rpo.status == 'ok'
    fail_msg: "newest backup of prod-main is {{ info.rpo.age_seconds | int }} s old ({{ info.rpo.status }})"

- name: Alert Slack on RPO breaches and size anomalies, and feed node_exporter
  dbdr.backup.backup_info:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    rpo_target: 90000
    notify:
      url: "{{ vault_slack_webhook_url }}"
    metrics_file: /var/lib/node_exporter/textfile_collector/dbdr_prod-main.prom

- name: Monthly cost with our own prices (eu-central-1, EUR)
  dbdr.backup.backup_info:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: postgres}
    currency: EUR
    prices: {STANDARD: 0.0225, STANDARD_IA: 0.0125, GLACIER: 0.0037, DEEP_ARCHIVE: 0.0018}
  register: info

- name: Backups taken before deployments
  dbdr.backup.backup_info:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    labels: {reason: pre-deploy}
'''

RETURN = r'''
cluster:
  description: The cluster.
  returned: success
  type: str
repository:
  description: Where the cluster's backups live (path or s3:// URL).
  returned: success
  type: str
  sample: s3://acme-db-backups/postgres/prod-main/backups/
generated_at:
  description: When this status was read, UTC ISO 8601.
  returned: success
  type: str
backups:
  description:
    - Complete backups with a readable manifest, oldest first, after O(labels), O(gfs_class) and O(since).
    - C(whole) is false for partial and safety backups. C(storage_classes) holds the stored bytes (manifest
      included) per storage class. C(size_anomaly) is null or C(ratio) (size / baseline), C(baseline_bytes) and
      C(threshold). C(verification) is the newest verification of the backup, or null.
  returned: success
  type: list
  elements: dict
  sample:
    - backup_id: 20261122T030000Z
      started_at: "2026-11-22T03:00:00+00:00"
      finished_at: "2026-11-22T03:04:10+00:00"
      duration_seconds: 250.2
      total_bytes: 1876543210
      gfs_class: daily
      labels: {}
      whole: true
      kind: logical
      databases: [app]
      storage_classes: {STANDARD: 1876545001}
      size_anomaly: null
      verification: {level: restore, result: ok, finished_at: "2026-11-22T05:12:00+00:00", restore_seconds: 610.4,
                     rto_target: 3600}
unreadable:
  description: Backups whose manifest exists but cannot be read or is tampered with (C(backup_id), C(error)).
  returned: success
  type: list
  elements: dict
newest_complete:
  description: Id of the newest complete whole backup (what restore's V(latest) and the RPO use), or null.
  returned: success
  type: str
newest_verified_good:
  description: Id of the newest backup whose newest verification passed, or null.
  returned: success
  type: str
rpo:
  description:
    - C(target_seconds), C(critical_seconds), C(age_seconds) (null without a backup), C(status)
      (V(ok), V(warning) or V(critical)) and C(newest_backup_at) (when its data was taken).
  returned: success
  type: dict
  sample: {target_seconds: 86400, critical_seconds: 172800, age_seconds: 32400.5, status: ok,
           newest_backup_at: "2026-11-22T03:00:41+00:00"}
verifications:
  description:
    - Every verification record of the cluster, oldest first, also of backups removed since, with every check
      (C(check), C(subject), C(result), C(detail)).
  returned: success
  type: list
  elements: dict
bytes_by_class:
  description: Stored bytes and number of backups per GFS class and storage class.
  returned: success
  type: list
  elements: dict
  sample:
    - {gfs_class: daily, storage_class: STANDARD, bytes: 13210987654, backups: 7}
    - {gfs_class: monthly, storage_class: GLACIER, bytes: 22876543210, backups: 12}
cost:
  description:
    - Monthly storage cost estimate - C(currency), C(monthly), C(by_storage_class) and the C(prices) used per GiB-month.
      Storage classes without a price are left out (with a warning).
  returned: success
  type: dict
  sample: {currency: USD, monthly: 0.37, by_storage_class: {STANDARD: 0.28, GLACIER: 0.09}, prices: {STANDARD: 0.023}}
notifications:
  description:
    - Per alert sent, C(event), C(status) (HTTP status) and C(attempts); or C(event) and C(error) when the delivery
      failed; or C(event) and C(skipped) in check mode.
  returned: success
  type: list
  elements: dict
  sample: [{event: rpo_breach, status: 200, attempts: 1}]
metrics_file:
  description: The metrics file written, or null (not asked for, or check mode).
  returned: success
  type: str
stage:
  description: The stage that failed (validate, storage, metrics).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbdr.backup.plugins.module_utils import _argspec, _status
from ansible_collections.dbdr.backup.plugins.module_utils._catalog import read_catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._glue import check_libraries
from ansible_collections.dbdr.backup.plugins.module_utils._layout import utc_now, validate_cluster
from ansible_collections.dbdr.backup.plugins.module_utils._publish import check_options, publish, status_of
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import GFS_CLASSES, open_repository


def argument_spec():
    spec = _argspec.repository_argspec()
    spec.update(_argspec.monitoring_argspec())
    spec.update(
        rpo_target=dict(type="int", default=86400),
        rpo_critical=dict(type="int"),
        size_anomaly_threshold=dict(type="float", default=0.5),
        prices=dict(type="dict"),
        currency=dict(type="str", default="USD"),
        labels=dict(type="dict"),
        gfs_class=dict(type="list", elements="str", choices=list(GFS_CLASSES)),
        since=dict(type="str"),
    )
    return spec


def read_status(params, now):
    """(unfiltered status, filtered status, warnings): everything is checked before the repository is read."""
    validate_cluster(params["cluster"])
    # Bad options, a bad webhook URL or metrics path fail up front, not after the repository was read.
    since = check_options(params)
    repository = open_repository(params["repository"])
    repository.check_readable(params["cluster"])
    catalog = read_catalog(repository, params["cluster"])
    status = status_of(repository, params, now, catalog)
    shown = _status.apply_filters(status, dict(labels=params["labels"], gfs_class=params["gfs_class"], since=since))
    warnings = list(catalog.problems)
    warnings += ["backup %s is unreadable: %s" % (u["backup_id"], u["error"]) for u in status["unreadable"]]
    unpriced = _status.unpriced_classes(status)
    if unpriced:
        warnings.append("no price for storage class %s: left out of the cost estimate (give it in prices)"
                        % ", ".join(unpriced))
    return repository, status, shown, warnings


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_libraries(module, gnupg=False, postgres=False)
    params = module.params
    try:
        repository, status, shown, warnings = read_status(params, utc_now())
        for warning in warnings:
            module.warn(warning)
        published = publish(repository, params, status=status, check_mode=module.check_mode)
    except DbdrError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage, **getattr(exc, "published", {}))
    for warning in published.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, notifications=published.get("notifications", []),
                     metrics_file=published.get("metrics_file"), **shown)


if __name__ == "__main__":
    main()
