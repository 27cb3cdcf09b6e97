#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_verify
short_description: Prove dbdr.backup backups by checksums, by reading them back, or by a full test restore
version_added: 0.1.0
description:
  - Verifies backups taken by M(dbdr.backup.pg_backup) and stores what it found as a verification record in the
    repository (C(<cluster>/verify/<backup_id>/<time>.json)); the manifest itself is never rewritten.
  - O(level=checksum) reads every stored object and compares its size and SHA-256 with the manifest. No key is
    needed.
  - O(level=readable) also decrypts and decompresses every object and has C(pg_restore --list) read each archive's
    table of contents (every table the manifest records must have data in it); the globals must parse as SQL.
  - O(level=restore) also restores every database into a scratch database on the server given by the connection
    options, then checks that each table has the row count the manifest records, that no foreign key has orphans
    (every foreign key found in the catalog is checked), that the O(assertions) hold and, with O(amcheck=true), that
    indexes and tables pass amcheck. The restore time is compared with O(rto_target). The scratch database is
    dropped in every case, also when a check fails or the run is interrupted; one left by a killed run is dropped
    by the next verification on that server.
  - Each check ends with a word from a fixed vocabulary - V(ok), V(missing), V(checksum_mismatch),
    V(size_mismatch), V(decrypt_failed), V(unreadable), V(row_count_mismatch), V(fk_orphans),
    V(assertion_failed), V(rto_exceeded) - and the verification is V(ok) only when every check is.
  - Can write a JSON report and a self-contained HTML page (O(report)), Prometheus metrics (O(metrics_file)) and
    alert a webhook (O(notify)).
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.postgres
  - dbdr.backup.repository
  - dbdr.backup.encryption
  - dbdr.backup.monitoring
options:
  backup_id:
    description:
      - V(latest) (the newest complete backup that is whole, as M(dbdr.backup.restore) chooses it - not a partial
        or a pre-restore safety backup), V(all) (every complete backup), or a backup id such as V(20261120T030000Z).
      - With V(all), backups whose objects a lifecycle rule moved to GLACIER or DEEP_ARCHIVE (and that were not
        restored from the archive tier) are skipped with a warning and listed in RV(not_verified); asked for by id,
        they fail as V(unreadable).
    type: str
    default: latest
  level:
    description: How far to go; each level includes the ones before it.
    type: str
    default: checksum
    choices: [ checksum, readable, restore ]
  databases:
    description: With O(level=restore), the databases of the backup to test-restore (default all).
    type: list
    elements: str
    default: []
  assertions:
    description:
      - SQL run in the restored database that must return no rows, or a single true value, for example
        V(select count(*\) = 0 from orders where amount < 0).
      - An element is SQL text, or a dict with C(sql), C(database) (needed when several databases are verified) and
        C(name). Each runs in a read-only transaction that is rolled back. Row values never reach the record.
    type: list
    elements: raw
    default: []
  amcheck:
    description:
      - Also run amcheck on the restored databases (C(bt_index_check) on every B-tree index, and C(verify_heapam) on
        every table on PostgreSQL 14 and later). The scratch server needs the amcheck extension (postgresql-contrib).
    type: bool
    default: false
  rto_target:
    description: Recovery time objective in seconds. A test restore that takes longer fails with V(rto_exceeded).
    type: float
  rpo_target:
    description: Recovery point objective in seconds, for the RPO shown in the report, the metrics and the alerts.
    type: int
    default: 86400
  jobs:
    description:
      - Parallel jobs of the test restore and of the checks. Above 1 the dump is first decrypted and decompressed
        into a private local copy under O(tmp_dir), removed afterwards.
    type: int
    default: 1
  no_owner:
    description: Restore without setting owners (C(pg_restore --no-owner)), so that the scratch server needs none of the roles.
    type: bool
    default: true
  no_privileges:
    description: Restore without grants (C(pg_restore --no-privileges)).
    type: bool
    default: true
  report:
    description:
      - Directory to write C(dbdr-report-<cluster>.json) and C(dbdr-report-<cluster>.html) into, describing the
        repository after this verification - backup sizes, backup and restore durations and RTO over time, the last
        results per check. The HTML page is self-contained (no external assets).
    type: path
  fail_on_failure:
    description:
      - Fail the task when a verification fails, after its record, the report, the metrics and the alert were
        written. With V(false) the task succeeds and RV(result) says V(failed).
    type: bool
    default: true
  pg_bin_dir:
    description: Directory of pg_restore. Default - the one matching the server (or the dump), then PATH.
    type: path
  tmp_dir:
    description: Directory for local copies (O(jobs) above 1, directory-format dumps). Default - the system temporary directory.
    type: path
notes:
  - The connection options name the scratch server, which is only used with O(level=restore). It needs CREATEDB;
    never point it at a server whose load matters during the test restore.
  - A backup whose objects were moved to an archive storage class (GLACIER, DEEP_ARCHIVE) cannot be read until it is
    restored from the archive tier; the check says so (V(unreadable)).
seealso:
  - module: dbdr.backup.backup_info
  - module: dbdr.backup.restore
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Returns which backups would be verified and how, reading only the manifests.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Check every backup's checksums (no key needed)
  dbdr.backup.backup_verify:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: pg}
    backup_id: all
    level: checksum
    encryption: {type: none}

- name: Monthly DR drill - test-restore the latest backup on a scratch server and prove it
  dbdr.backup.backup_verify:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: pg}
    encryption: {gnupghome: /var/lib/dbdr/gnupg, passphrase_file: /etc/dbdr/gpg-passphrase}
    login_host: scratch-db.internal
    login_user: dbdr_verify
    level: restore
    jobs: 2
    amcheck: true
    assertions:
      - select count(*) = 0 from orders where amount < 0
      - {database: app, name: recent orders, sql: "select max(created_at) > now() - interval '2 days' from orders"}
    rto_target: 3600
    report: /var/lib/dbdr/reports
    metrics_file: /var/lib/node_exporter/textfile/dbdr.prom
    notify: {url: "{{ vault_slack_webhook }}"}
'''

RETURN = r'''
not_verified:
  description: Backups not verified because their objects sit in an archive storage class, with the reason.
  returned: success, not in check mode
  type: list
  elements: dict
  sample: [{"backup_id": "20260101T030000Z", "reason": "2 object(s) in GLACIER not restored from the archive tier; ..."}]
result:
  description: V(ok) when every verified backup passed every check, else V(failed).
  returned: success, not in check mode
  type: str
results:
  description:
    - Per verified backup - its verification record without the checks that passed (C(checks) holds the failures,
      C(checks_total) the number of checks, C(counts) the number per result word), and C(record), the key of the
      stored record.
  returned: success, not in check mode
  type: list
  elements: dict
scratch_removed:
  description:
    - Scratch databases that killed verifications had left on the server, dropped by this run, and local copies they
      had left under O(tmp_dir), removed by this run.
  returned: success, not in check mode
  type: list
  elements: str
report:
  description: Paths of the JSON and HTML reports written.
  returned: when O(report) is set, not in check mode
  type: dict
notifications:
  description: Webhook deliveries (C(event), C(status), C(attempts)) or their errors.
  returned: when O(notify) is set, not in check mode
  type: list
  elements: dict
plan:
  description: The backups to verify (ids, objects, databases) and how.
  returned: always
  type: dict
stage:
  description: The stage that failed (validate, storage, connect, verify, ...).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbdr.backup.plugins.module_utils import _argspec
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._glue import Interrupted, check_libraries, raise_on_signals
from ansible_collections.dbdr.backup.plugins.module_utils._publish import check_options, publish, verify_events
from ansible_collections.dbdr.backup.plugins.module_utils._verify.run import VerifyRequest, VerifyResult, plan_verify, run_verify


def argument_spec():
    spec = _argspec.postgres_argspec()
    spec.update(_argspec.repository_argspec())
    spec.update(_argspec.encryption_argspec())
    spec.update(_argspec.monitoring_argspec())
    spec.update(
        backup_id=dict(type="str", default="latest"),
        level=dict(type="str", default="checksum", choices=["checksum", "readable", "restore"]),
        databases=dict(type="list", elements="str", default=[]),
        assertions=dict(type="list", elements="raw", default=[]),
        amcheck=dict(type="bool", default=False),
        rto_target=dict(type="float"),
        rpo_target=dict(type="int", default=86400),
        jobs=dict(type="int", default=1),
        no_owner=dict(type="bool", default=True),
        no_privileges=dict(type="bool", default=True),
        report=dict(type="path"),
        fail_on_failure=dict(type="bool", default=True),
        pg_bin_dir=dict(type="path"),
        tmp_dir=dict(type="path"),
    )
    return spec


def request_from(params):
    return VerifyRequest(
        cluster=params["cluster"], repository=params["repository"], connection=_argspec.connection_params(params),
        encryption=params["encryption"], backup_id=params["backup_id"], level=params["level"],
        databases=params["databases"], assertions=params["assertions"], amcheck=params["amcheck"],
        rto_target=params["rto_target"], jobs=params["jobs"], no_owner=params["no_owner"],
        no_privileges=params["no_privileges"], pg_bin_dir=params["pg_bin_dir"], tmp_dir=params["tmp_dir"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    check_libraries(module, gnupg=False, postgres=params["level"] == "restore")
    raise_on_signals()
    plan = result = None
    try:
        check_options(params)
        plan = plan_verify(request_from(params))
        if module.check_mode:
            module.exit_json(changed=False, plan=plan.to_dict())
        result = VerifyResult()
        run_verify(plan, result)
        records = [record for record, _key in result.records]
        published = publish(plan.repository, params, events=verify_events(records, params["notify"]))
    except DbdrError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage, plan=plan.to_dict() if plan else None,
                         **dict(outcome(result), **getattr(exc, "published", {})) if result else {})
    except Interrupted as exc:
        written = len(result.records) if result else 0
        module.fail_json(msg="verification interrupted; the scratch database was dropped; %d verification record(s) "
                             "had been written before: %s" % (written, exc), stage="interrupted")
    skipped = ["backup %s was not verified: %s" % (s["backup_id"], s["reason"]) for s in plan.skipped]
    for warning in skipped + result.warnings + published.pop("warnings"):
        module.warn(warning)
    done = dict(outcome(result), plan=plan.to_dict(), not_verified=plan.skipped, **published)
    if result.error is not None:
        module.fail_json(msg="verification stopped after %d backup(s): %s" % (len(result.records), result.error),
                         stage=result.error.stage, **done)
    if not result.ok and params["fail_on_failure"]:
        module.fail_json(msg="verification failed - %s" % result.failure_summary(), stage="verify", **done)
    module.exit_json(**done)


def outcome(result):
    return dict(changed=bool(result.records), result="ok" if result.ok else "failed",
                scratch_removed=result.scratch_removed,
                results=[dict(record.summary(), record=key) for record, key in result.records])


if __name__ == "__main__":
    main()
