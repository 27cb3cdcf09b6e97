#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: restore
short_description: Restore PostgreSQL databases, tables or globals from a dbdr.backup repository, safely
version_added: 0.1.0
description:
  - Restores a logical backup taken by M(dbdr.backup.pg_backup) from a local or S3 repository.
  - Chooses the newest complete backup, an explicit O(backup_id), or the newest one taken at or before O(before).
  - Before anything on the server changes, every object it needs is read back in full and checked against the
    manifest (size, SHA-256, GPG decryption, decompression); the GPG secret key, the client tools and the target
    server are checked as well.
  - Databases are always restored into a staging database first, whose row counts must equal the ones the backup
    recorded. Only then is anything replaced, by renaming databases in one transaction, so that a database name is
    never missing and production is never half-restored.
  - In O(mode=swap) a safety backup of the live database is taken (label C(purpose=pre-restore)), its sessions are
    ended, and it is kept as C(<name>__pre_restore_<restore id>) next to the restored one.
  - O(mode=tables) replaces the rows of some tables of a live database in one transaction.
  - O(mode=globals) creates the roles and tablespaces of the backup that do not exist yet.
  - An audit record of every run, successful or not, is stored in the repository.
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.postgres
  - dbdr.backup.repository
  - dbdr.backup.encryption
  - dbdr.backup.compression
options:
  backup_id:
    description:
      - V(latest) (the newest complete backup that holds the requested databases), or a backup id such as
        V(20261120T030000Z).
    type: str
    default: latest
  before:
    description:
      - Use the newest complete backup whose data was taken at or before this time (the snapshot of every database
        in it), an ISO 8601 timestamp with an explicit offset such as V(2026-11-20T03:00:00+00:00) or V(...Z).
      - Mutually exclusive with an explicit O(backup_id).
    type: str
  databases:
    description:
      - Databases of the backup to restore (their names in the backup). Default is every database it holds.
    type: list
    elements: str
    default: []
  target_database:
    description:
      - Restore the one database named in O(databases) under this name, for example V(app_copy).
    type: str
  mode:
    description:
      - V(new) restores into databases that do not exist yet and never touches existing ones.
      - V(swap) replaces existing databases, keeping the current ones as pre-restore copies.
      - V(auto) is V(swap) for a database that exists and V(new) for one that does not.
      - V(tables) replaces the rows of O(tables) in an existing database, in one transaction.
      - V(globals) creates missing roles and tablespaces; existing ones are left as they are and reported.
    type: str
    default: auto
    choices: [ auto, new, swap, tables, globals ]
  tables:
    description:
      - For O(mode=tables), schema-qualified tables (psql patterns such as V(public.orders) or V(sales.*)).
      - Tables referenced by foreign keys of tables not in the list are refused, since replacing their rows would
        change those tables too.
    type: list
    elements: str
    default: []
  confirm:
    description:
      - Must be V(true) for modes that change existing data (V(swap), and V(tables)); without it the task fails
        and its message says what would happen.
    type: bool
    default: false
  jobs:
    description:
      - Parallel C(pg_restore) jobs. Above 1, each dump is decrypted and decompressed once into a private local
        file under O(tmp_dir) (C(pg_restore --jobs) needs a seekable file), removed afterwards in every case;
        with 1, dumps stream from the repository into C(pg_restore) without a local copy (each is then read twice,
        once to verify it, once to restore).
      - O(mode=tables) always works from a local copy, since it reads the archive out of its order.
    type: int
    default: 1
  safety_backup:
    description:
      - Take a backup of the live databases (or tables) before they are replaced, with the label
        C(purpose=pre-restore). Turn it off only knowingly.
    type: bool
    default: true
  safety_backup_cluster:
    description: Cluster name under which the safety backup is stored. Defaults to O(cluster).
    type: str
  keep_pre_restore:
    description:
      - After a successful swap, keep only this many pre-restore copies per database (the newest), dropping older
        ones. By default every copy is kept.
    type: int
  post_restore_sql:
    description:
      - SQL files (on the managed host) run in one transaction in each restored database before it goes live, for
        example to re-apply erasure requests recorded since the backup. In O(mode=tables) they run in the same
        transaction as the table restore.
    type: list
    elements: path
    default: []
  analyze:
    description: Run ANALYZE on what was restored before it goes live.
    type: bool
    default: true
  no_owner:
    description: Do not restore object ownership (C(pg_restore --no-owner)); objects belong to the restoring user.
    type: bool
    default: false
  no_privileges:
    description: Do not restore privileges (C(pg_restore --no-privileges)).
    type: bool
    default: false
  terminate_timeout:
    description:
      - Seconds to wait for the sessions of a database being replaced to end, and for table locks in O(mode=tables).
    type: int
    default: 30
  pg_bin_dir:
    description:
      - Directory of C(pg_restore), C(psql) and C(vacuumdb). By default the tools of the server's major version.
    type: path
  tmp_dir:
    description: Where local copies for parallel restores are made. Needs room for the uncompressed dumps.
    type: path
notes:
  - O(encryption.gnupghome) must hold the private key of one of the keys the backup was encrypted to; give its
    passphrase with O(encryption.passphrase) or O(encryption.passphrase_file) (it reaches gpg through a pipe).
  - The safety backup is encrypted to the same keys as the backup being restored, unless O(encryption.recipients)
    is given, and compressed with O(compression).
  - O(mode=swap) needs room on the server for the staging database next to the live one; the previous database is
    kept until removed with O(keep_pre_restore).
  - Backups labelled C(purpose=pre-restore) (safety backups) and partial backups (schema only, data only, some
    tables) are never chosen as V(latest); a partial backup never replaces a whole database.
  - Check mode chooses the backup, checks objects are present with the recorded sizes, the key, tools, server and
    privileges, and returns the plan; it reads no object in full and changes nothing.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Returns the plan (backup chosen, objects, steps) without changing anything.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: See what a restore of the latest backup would do
  dbdr.backup.restore:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    encryption: {gnupghome: /var/lib/dbdr/gnupg, passphrase_file: /etc/dbdr/key-passphrase}
    databases: [app]
  check_mode: true
  register: restore_plan

- name: Replace the app database with the backup taken before the incident
  dbdr.backup.restore:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: postgres, region: eu-central-1}
    encryption: {gnupghome: /var/lib/dbdr/gnupg, passphrase: "{{ vault_backup_key_passphrase }}"}
    before: "2026-11-20T03:00:00+00:00"
    databases: [app]
    mode: swap
    confirm: true
    jobs: 2
    keep_pre_restore: 2

- name: Restore app as app_copy next to it
  dbdr.backup.restore:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    encryption: {gnupghome: /var/lib/dbdr/gnupg}
    databases: [app]
    target_database: app_copy
    mode: new

- name: Put back yesterday's rows of one table
  dbdr.backup.restore:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    encryption: {gnupghome: /var/lib/dbdr/gnupg}
    backup_id: 20261122T030000Z
    databases: [app]
    mode: tables
    tables: [public.orders, public.order_lines]
    confirm: true
'''

RETURN = r'''
backup_id:
  description: The backup that was (or in check mode would be) restored.
  returned: always
  type: str
  sample: 20261122T030000Z
backup:
  description: Summary of that backup's manifest.
  returned: always
  type: dict
restore_id:
  description: Identifier of this restore run (UTC start time), used in pre-restore copy names.
  returned: success, not in check mode
  type: str
databases:
  description:
    - Per database restored, its name in the backup, the target name, the mode, the previous database (swap), and
      the per-table row count comparison between the backup and the restored database.
  returned: success, not in check mode
  type: list
  elements: dict
  sample:
    - database: app
      target: app
      mode: swap
      previous_database: app__pre_restore_20261123t101500z
      tables: [{schema: public, name: orders, backup_rows: 5000, restored_rows: 5000, match: true}]
globals:
  description: For O(mode=globals), the roles and tablespaces created and the existing ones skipped.
  returned: success, mode globals
  type: dict
  sample: {roles_created: [app_rw], roles_skipped: [postgres], tablespaces_created: [], tablespaces_skipped: []}
safety_backup_id:
  description: Id of the safety backup taken before replacing live data, if any.
  returned: success, not in check mode
  type: str
pre_restore_copies:
  description: The pre-restore copies of the restored databases that exist after this run.
  returned: success, not in check mode
  type: list
  elements: dict
pre_restore_dropped:
  description: Pre-restore copies dropped because of O(keep_pre_restore).
  returned: success, not in check mode
  type: list
  elements: str
leftovers_removed:
  description:
    - Staging databases left by earlier interrupted restores of the same databases, dropped by this run, and
      local copies (directories under O(tmp_dir)) that killed restores left behind, removed by this run.
  returned: success, not in check mode
  type: list
  elements: str
sessions_terminated:
  description: Sessions of the replaced databases that were ended.
  returned: success, not in check mode
  type: int
steps:
  description: Seconds spent per step (verify, restore, check, analyze, safety backup, swap, ...).
  returned: success, not in check mode
  type: list
  elements: dict
duration_seconds:
  description: Total wall-clock time of the restore, the recovery time actually achieved.
  returned: success, not in check mode
  type: float
audit_record:
  description: Repository key of the audit record of this run.
  returned: success, not in check mode
  type: str
plan:
  description: What the restore does (or in check mode would do) - backup chosen, objects, databases, steps.
  returned: always
  type: dict
stage:
  description: The stage that failed (validate, connect, encryption, storage, verify, pg_restore, check, swap, ...).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbdr.backup.plugins.module_utils import _argspec
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._restore.plan import RestoreRequest, plan_restore
from ansible_collections.dbdr.backup.plugins.module_utils._restore.run import result_dict, run_restore
from ansible_collections.dbdr.backup.plugins.module_utils._glue import Interrupted, check_libraries, raise_on_signals


def argument_spec():
    spec = _argspec.storage_module_argspec()
    spec.update(
        backup_id=dict(type="str", default="latest"),
        before=dict(type="str"),
        databases=dict(type="list", elements="str", default=[]),
        target_database=dict(type="str"),
        mode=dict(type="str", default="auto", choices=["auto", "new", "swap", "tables", "globals"]),
        tables=dict(type="list", elements="str", default=[]),
        confirm=dict(type="bool", default=False),
        jobs=dict(type="int", default=1),
        safety_backup=dict(type="bool", default=True),
        safety_backup_cluster=dict(type="str"),
        keep_pre_restore=dict(type="int"),
        post_restore_sql=dict(type="list", elements="path", default=[]),
        analyze=dict(type="bool", default=True),
        no_owner=dict(type="bool", default=False),
        no_privileges=dict(type="bool", default=False),
        terminate_timeout=dict(type="int", default=30),
        pg_bin_dir=dict(type="path"),
        tmp_dir=dict(type="path"),
    )
    return spec


def request_from(params):
    return RestoreRequest(
        cluster=params["cluster"], repository=params["repository"], connection=_argspec.connection_params(params),
        encryption=params["encryption"], compression=params["compression"], backup_id=params["backup_id"],
        before=params["before"], databases=params["databases"], target_database=params["target_database"],
        mode=params["mode"], tables=params["tables"], confirm=params["confirm"], jobs=params["jobs"],
        safety_backup=params["safety_backup"], safety_backup_cluster=params["safety_backup_cluster"],
        keep_pre_restore=params["keep_pre_restore"], post_restore_sql=params["post_restore_sql"],
        analyze=params["analyze"], no_owner=params["no_owner"], no_privileges=params["no_privileges"],
        terminate_timeout=params["terminate_timeout"], pg_bin_dir=params["pg_bin_dir"], tmp_dir=params["tmp_dir"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_libraries(module)
    raise_on_signals()
    plan = None
    try:
        plan = plan_restore(request_from(module.params))
        for warning in plan.warnings:
            module.warn(warning)
        common = dict(backup_id=plan.manifest.backup_id, backup=plan.manifest.summary(), plan=plan.to_dict())
        if module.check_mode:
            module.exit_json(changed=True, **common)
        if plan.destructive and not module.params["confirm"]:
            module.fail_json(msg=plan.confirmation_message(), stage="confirm", **common)
        result = run_restore(plan)
    except DbdrError as exc:
        for warning in getattr(exc, "warnings", []):
            module.warn(warning)
        message = str(exc)
        if getattr(exc, "swapped", False):
            message = "the restored databases are live (the swap completed), but a later step failed: " + message
        module.fail_json(msg=message, stage=exc.stage, plan=plan.to_dict() if plan else None)
    except Interrupted as exc:
        for warning in getattr(exc, "warnings", []):
            module.warn(warning)
        if getattr(exc, "swapped", False):
            module.fail_json(msg="restore interrupted after the swap completed (the restored databases are live): %s"
                             % exc, stage="interrupted")
        module.fail_json(msg="restore interrupted before the swap; staging databases and local copies were removed, "
                             "production is unchanged: %s" % exc, stage="interrupted")
    for warning in result.warnings:
        if warning not in plan.warnings:
            module.warn(warning)
    module.exit_json(changed=True, restore_id=plan.restore_id, audit_record=result.audit_key,
                     **dict(common, **result_dict(result)))


if __name__ == "__main__":
    main()
