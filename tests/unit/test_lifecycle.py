"""s3_lifecycle's domain code (no storage): rules from tiers, S3's own rules as clear errors
before any write, the normal form that keeps re-runs quiet, the merge with rules we don't own,
and the cost projection. Expected rules and figures are written out by hand."""

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.apply import (
    Lifecycle, converge, normal_rule, normal_rules, plan_lifecycle)
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.cost import project_cost
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.rules import build_spec, is_managed_id

GIB = 1024 ** 3
DESIGN_TIERS = {
    "daily": {"expire_days": 14},
    "weekly": {"transitions": [{"days": 30, "storage_class": "STANDARD_IA"}], "expire_days": 56},
    "monthly": {"transitions": [{"days": 30, "storage_class": "GLACIER"}], "expire_days": 365},
    "yearly": {"transitions": [{"days": 1, "storage_class": "DEEP_ARCHIVE"}], "expire_days": 2555},
}


def rules_by_id(spec):
    return dict((rule["ID"], rule) for rule in spec.desired_rules())


def tags(*pairs):
    return [{"Key": k, "Value": v} for k, v in pairs]


def test_design_tiers_expire_manifests_first_and_move_only_data():
    rules = rules_by_id(build_spec("prod", DESIGN_TIERS, abort_incomplete_multipart_days=7))
    classes = ("daily", "weekly", "monthly", "yearly")
    assert sorted(rules) == sorted(["dbdr:%s%s@prod/" % (c, kind) for c in classes for kind in ("", "-data", "-untagged")]
                                   + ["dbdr:abort-multipart@prod/"])
    # The manifest (dbdr-data=false) on the day; the data a day later; untagged objects a day after that.
    assert rules["dbdr:daily@prod/"] == {
        "ID": "dbdr:daily@prod/", "Status": "Enabled", "Expiration": {"Days": 14},
        "Filter": {"And": {"Prefix": "prod/", "Tags": tags(("dbdr-class", "daily"), ("dbdr-data", "false"))}}}
    assert rules["dbdr:daily-data@prod/"] == {
        "ID": "dbdr:daily-data@prod/", "Status": "Enabled", "Expiration": {"Days": 15},
        "Filter": {"And": {"Prefix": "prod/", "Tags": tags(("dbdr-class", "daily"), ("dbdr-data", "true"))}}}
    assert rules["dbdr:daily-untagged@prod/"] == {
        "ID": "dbdr:daily-untagged@prod/", "Status": "Enabled", "Expiration": {"Days": 16},
        "Filter": {"And": {"Prefix": "prod/", "Tags": tags(("dbdr-class", "daily"))}}}
    assert rules["dbdr:monthly-data@prod/"] == {
        "ID": "dbdr:monthly-data@prod/", "Status": "Enabled",
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}], "Expiration": {"Days": 366},
        "Filter": {"And": {"Prefix": "prod/", "Tags": tags(("dbdr-class", "monthly"), ("dbdr-data", "true"))}}}
    # No rule that moves objects matches a manifest.
    for rule_id, rule in rules.items():
        if "Transitions" in rule:
            assert {"Key": "dbdr-data", "Value": "true"} in rule["Filter"]["And"]["Tags"], rule_id
    assert rules["dbdr:abort-multipart@prod/"] == {
        "ID": "dbdr:abort-multipart@prod/", "Status": "Enabled", "Filter": {"Prefix": "prod/"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}


def test_without_prefix_a_single_tag_is_a_bare_tag_filter():
    rules = rules_by_id(build_spec("", {"daily": {"expire_days": 10},
                                        "yearly": {"transitions": [{"days": 0, "storage_class": "GLACIER"}]}},
                                   abort_incomplete_multipart_days=0))
    assert rules["dbdr:daily-untagged@"]["Filter"] == {"Tag": {"Key": "dbdr-class", "Value": "daily"}}
    assert rules["dbdr:daily@"]["Filter"] == {"And": {"Tags": tags(("dbdr-class", "daily"), ("dbdr-data", "false"))}}
    assert rules["dbdr:yearly-data@"] == {
        "ID": "dbdr:yearly-data@", "Status": "Enabled", "Transitions": [{"Days": 0, "StorageClass": "GLACIER"}],
        "Filter": {"And": {"Tags": tags(("dbdr-class", "yearly"), ("dbdr-data", "true"))}}}
    assert "dbdr:yearly@" not in rules and "dbdr:yearly-untagged@" not in rules   # kept forever
    assert "dbdr:abort-multipart@" not in rules  # 0 turns the rule off


def test_wal_and_noncurrent_rules():
    spec = build_spec("/pg/", {c: {"expire_days": 20 + i} for i, c in enumerate(("daily", "weekly", "monthly", "yearly"))},
                      abort_incomplete_multipart_days=None, noncurrent_version_expiration_days=30,
                      wal={"clusters": ["main", "reporting"], "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}],
                           "expire_days": 90})
    rules = rules_by_id(spec)
    assert rules["dbdr:wal:main@pg/"] == {
        "ID": "dbdr:wal:main@pg/", "Status": "Enabled", "Filter": {"Prefix": "pg/main/wal/"},
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}], "Expiration": {"Days": 90}}
    assert rules["dbdr:wal:reporting@pg/"]["Filter"] == {"Prefix": "pg/reporting/wal/"}
    assert rules["dbdr:noncurrent@pg/"] == {
        "ID": "dbdr:noncurrent@pg/", "Status": "Enabled", "Filter": {"Prefix": "pg/"},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Expiration": {"ExpiredObjectDeleteMarker": True}}


def test_the_examples_of_the_module_pass_validation():
    import yaml
    from ansible_collections.dbdr.backup.plugins.modules import s3_lifecycle

    for task in yaml.safe_load(s3_lifecycle.EXAMPLES):
        args = task["dbdr.backup.s3_lifecycle"]
        if args.get("state") == "absent":
            continue
        spec = build_spec(args.get("prefix", ""), args.get("tiers"), wal=args.get("wal"),
                          noncurrent_version_expiration_days=args.get("noncurrent_version_expiration_days"),
                          retention_policy=args.get("retention_policy"))
        assert spec.warnings == [], task["name"]


@pytest.mark.parametrize("tiers, message", [
    ({"daily": {"transitions": [{"days": 10, "storage_class": "STANDARD_IA"}]}},
     "S3 moves objects to STANDARD_IA only once they are 30 days old (got days: 10)"),
    ({"weekly": {"transitions": [{"days": 29, "storage_class": "ONEZONE_IA"}]}},
     "ONEZONE_IA only once they are 30 days old"),
    ({"monthly": {"transitions": [{"days": 1, "storage_class": "GLACIER"}, {"days": 60, "storage_class": "STANDARD_IA"}]}},
     "S3 cannot move objects from GLACIER to STANDARD_IA"),
    ({"monthly": {"transitions": [{"days": 30, "storage_class": "ONEZONE_IA"}, {"days": 90, "storage_class": "GLACIER_IR"}]}},
     "S3 cannot move objects from ONEZONE_IA to GLACIER_IR"),
    ({"monthly": {"transitions": [{"days": 30, "storage_class": "STANDARD_IA"}, {"days": 45, "storage_class": "GLACIER"}]}},
     "the transition to GLACIER (day 45) must come at least 30 day(s) after the one to STANDARD_IA (day 30)"),
    ({"monthly": {"transitions": [{"days": 5, "storage_class": "GLACIER_IR"}, {"days": 5, "storage_class": "GLACIER"}]}},
     "the transition to GLACIER (day 5) must come at least 1 day(s) after"),
    ({"yearly": {"transitions": [{"days": 1, "storage_class": "GLACIER"}, {"days": 9, "storage_class": "GLACIER"}]}},
     "two transitions to GLACIER"),
    ({"monthly": {"transitions": [{"days": 90, "storage_class": "GLACIER"}], "expire_days": 90}},
     "expire_days (90) must come after the last transition (to GLACIER on day 90)"),
    ({"monthly": {"transitions": [{"days": 30, "storage_class": "GLACIER_FLEXIBLE"}]}},
     "'GLACIER_FLEXIBLE' is not a storage class S3 transitions to"),
    ({"monthly": {"transitions": [{"days": 30, "storage_class": "STANDARD"}]}},
     "'STANDARD' is not a storage class S3 transitions to"),
    ({"hourly": {"expire_days": 2}}, "tiers: unknown GFS class(es) hourly"),
    ({"daily": {}}, "tiers.daily has neither transitions nor expire_days"),
    ({"daily": {"expire_days": 0}}, "tiers.daily.expire_days must be at least 1, got 0"),
    ({"daily": {"expire_days": True}}, "tiers.daily.expire_days must be a whole number of days"),
    ({"daily": {"expire_days": "14"}}, "tiers.daily.expire_days must be a whole number of days"),
    ({"daily": {"transitions": [{"days": -1, "storage_class": "GLACIER"}]}}, "days must be at least 0, got -1"),
    ({"daily": {"transitions": [{"storage_class": "GLACIER"}]}}, "tiers.daily.transitions[0] must be {days: N"),
    ({"daily": {"expire_days": 3, "keep": True}}, "tiers.daily: unknown option(s) keep"),
    ({"daily": [14]}, "tiers.daily must be a dictionary"),
])
def test_tiers_that_s3_would_refuse_are_refused_with_the_rule_named(tiers, message):
    with pytest.raises(InputError) as info:
        build_spec("prod", tiers)
    assert message in str(info.value)


def test_leaving_a_class_early_is_a_warning_with_the_minimum_billed():
    spec = build_spec("", {"weekly": DESIGN_TIERS["weekly"],
                           "monthly": {"transitions": [{"days": 30, "storage_class": "GLACIER"}], "expire_days": 60},
                           "yearly": DESIGN_TIERS["yearly"]})
    assert spec.warnings == [
        "tiers.weekly: objects leave STANDARD_IA after 26 days, but S3 bills at least 30 days there",
        "tiers.monthly: objects leave GLACIER after 30 days, but S3 bills at least 90 days there"]


ALL_EXPIRE = {"daily": {"expire_days": 14}, "weekly": {"expire_days": 60}, "monthly": {"expire_days": 365},
              "yearly": {"expire_days": 400}}


@pytest.mark.parametrize("wal, message", [
    ({"clusters": ["main"], "expire_days": 400}, "wal.expire_days (400) must be longer than the longest-kept backups (400 days)"),
    ({"clusters": [], "expire_days": 400}, "wal.clusters must name the clusters"),
    ({"clusters": ["main", "main"], "expire_days": 400}, "wal.clusters lists a cluster twice"),
    ({"clusters": ["../etc"], "expire_days": 400}, "cluster"),
    ({"clusters": ["main"]}, "wal has neither transitions nor expire_days"),
])
def test_wal_never_expires_before_the_backups_that_need_it(wal, message):
    with pytest.raises(InputError) as info:
        build_spec("", ALL_EXPIRE, wal=wal)
    assert message in str(info.value)
    assert build_spec("", ALL_EXPIRE, wal={"clusters": ["main"], "expire_days": 401}).wal_tier.expire_days == 401


@pytest.mark.parametrize("tiers", [
    None,                                                                   # WAL rule alone
    {"daily": {"expire_days": 16}},                                         # weekly... kept by retention, for ever here
    dict(ALL_EXPIRE, yearly={"transitions": [{"days": 1, "storage_class": "DEEP_ARCHIVE"}]}),
])
def test_wal_expiry_is_refused_while_some_class_has_no_expiry(tiers):
    with pytest.raises(InputError) as info:
        build_spec("", tiers, wal={"clusters": ["main"], "expire_days": 5000})
    assert "backups have no expiry here" in str(info.value) and "must not expire either" in str(info.value)


def test_with_the_retention_policy_wal_must_outlive_what_retention_keeps():
    policy = {"daily": 7, "weekly": 4, "monthly": 0, "yearly": 0}   # monthly/yearly: retention keeps none
    tiers = {"daily": {"expire_days": 30}}
    # weekly: (4 + 1) * 7 = 35 days; daily: min(30, 8) = 8
    with pytest.raises(InputError, match=r"wal.expire_days \(35\) must be longer than the longest-kept backups \(35 days\)"):
        build_spec("", tiers, wal={"clusters": ["main"], "expire_days": 35}, retention_policy=policy)
    assert build_spec("", tiers, wal={"clusters": ["main"], "expire_days": 36}, retention_policy=policy)


def test_archived_wal_gets_a_warning_about_pitr_delay():
    spec = build_spec("", {"daily": {"expire_days": 9}},
                      wal={"clusters": ["main"], "transitions": [{"days": 30, "storage_class": "GLACIER"}]})
    assert any("before a point-in-time recovery can replay it" in w for w in spec.warnings)


def test_an_expiry_shorter_than_the_retention_policy_keeps_is_refused():
    policy = {"daily": 14, "weekly": 8, "monthly": 12, "yearly": 7}
    with pytest.raises(InputError) as info:
        build_spec("", DESIGN_TIERS, retention_policy=policy)
    text = str(info.value)
    # daily 14 periods + 1 = 15 days; weekly 9 * 7 = 63; monthly 13 * 30.44 = 396; yearly 8 * 365.25 = 2922
    assert "tiers.daily.expire_days=14 deletes daily backups that the retention policy keeps (daily: 14 periods); " \
           "use at least 15" in text
    assert "tiers.weekly.expire_days=56" in text and "use at least 63" in text
    assert "use at least 396" in text and "use at least 2922" in text
    spec = build_spec("", {"daily": {"expire_days": 15}, "weekly": {"expire_days": 63}}, retention_policy=policy)
    assert [t.name for t in spec.tiers] == ["daily", "weekly"]
    with pytest.raises(InputError, match="unknown policy option"):
        build_spec("", {"daily": {"expire_days": 15}}, retention_policy={"dayly": 3})


@pytest.mark.parametrize("rules, message", [
    ([{"Status": "Enabled", "Filter": {"Prefix": "x/"}, "Expiration": {"Days": 3}}], "rules[0] needs an ID"),
    ([{"ID": "dbdr:mine", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 3}}], "reserved"),
    ([{"ID": "a", "Status": "On", "Filter": {}, "Expiration": {"Days": 3}}], "Status must be Enabled or Disabled"),
    ([{"ID": "a", "Status": "Enabled", "Filter": {}}], "the rule has no action"),
    ([{"ID": "a", "Status": "Enabled", "Prefix": "", "Filter": {}, "Expiration": {"Days": 3}}], "not both"),
    ([{"ID": "a", "Status": "Enabled", "Filter": {}, "Expires": {"Days": 3}}], "unknown key(s) Expires"),
    ([{"ID": "a", "Status": "Enabled", "Filter": {}, "Transitions": [{"Days": 5, "StorageClass": "STANDARD_IA"}]}],
     "rules[0] (a): S3 moves objects to STANDARD_IA only once they are 30 days old"),
    ([{"ID": "a", "Status": "Enabled", "Filter": {}, "Transitions": [{"Date": "2030-01-01", "StorageClass": "GLACIER"}]}],
     "needs Days and StorageClass"),
    ([{"ID": "a", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
       "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}], "AbortIncompleteMultipartUpload with a tag filter"),
    ([{"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 3}},
      {"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 4}}], "duplicate ID(s) a"),
    (["not a rule"], "rules[0] must be an S3 lifecycle rule"),
])
def test_raw_rules_are_checked_like_ours(rules, message):
    with pytest.raises(InputError) as info:
        build_spec("", None, rules=rules)
    assert message in str(info.value)


@pytest.mark.parametrize("prefix, message", [("a/../b", "must not contain '..'"), ("a@b", "must not contain '@'"),
                                             ("p" * 300, "prefix is too long")])
def test_bad_prefixes(prefix, message):
    with pytest.raises(InputError, match=message):
        build_spec(prefix, {"daily": {"expire_days": 3}})


def test_nothing_to_manage_is_an_error_unless_removing():
    with pytest.raises(InputError, match="nothing to manage"):
        build_spec("", None, abort_incomplete_multipart_days=0)
    assert build_spec("", None, abort_incomplete_multipart_days=0, allow_empty=True).desired_rules() == []


def test_rule_ownership_is_by_id_prefix_and_repository_prefix():
    assert is_managed_id("dbdr:daily@prod/", "prod/")
    assert is_managed_id("dbdr:wal:main@prod/", "prod/")
    assert not is_managed_id("dbdr:daily@staging/", "prod/")
    assert not is_managed_id("dbdr:daily@x@prod/", "prod/")
    assert not is_managed_id("daily@prod/", "prod/")
    assert not is_managed_id(None, "prod/")
    assert is_managed_id("dbdr:daily@", "") and not is_managed_id("dbdr:daily@prod/", "")


def test_what_s3_returns_compares_equal_to_what_we_wrote():
    ours = {"ID": "r", "Status": "Enabled", "Filter": {"And": {"Prefix": "p/", "Tags": [
        {"Key": "dbdr-class", "Value": "monthly"}, {"Key": "dbdr-data", "Value": "true"}]}},
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER_IR"}, {"Days": 120, "StorageClass": "DEEP_ARCHIVE"}]}
    returned = {"Transitions": [{"StorageClass": "DEEP_ARCHIVE", "Days": 120}, {"Days": 30, "StorageClass": "GLACIER_IR"}],
                "ID": "r", "Status": "Enabled", "Filter": {"And": {"Tags": [
                    {"Key": "dbdr-data", "Value": "true"}, {"Key": "dbdr-class", "Value": "monthly"}], "Prefix": "p/"}},
                "NoncurrentVersionTransitions": [], "Expiration": {"ExpiredObjectDeleteMarker": False}}
    assert normal_rule(ours) == normal_rule(returned)
    # A day-0 transition is a value, not an empty field.
    zero = {"ID": "z", "Status": "Enabled", "Filter": {}, "Transitions": [{"Days": 0, "StorageClass": "GLACIER"}]}
    assert normal_rule(zero)["Transitions"] == [{"Days": 0, "StorageClass": "GLACIER"}]
    # One filter, several spellings.
    assert normal_rule({"ID": "l", "Prefix": "x/", "Status": "Enabled"})["Filter"] == {"Prefix": "x/"}
    assert normal_rule({"ID": "e", "Filter": {}, "Status": "Enabled"})["Filter"] == {"Prefix": ""}
    assert normal_rule({"ID": "t", "Filter": {"And": {"Prefix": "", "Tags": [{"Key": "k", "Value": "v"}]}},
                        "Status": "Enabled"})["Filter"] == {"Tag": {"Key": "k", "Value": "v"}}
    # Real differences stay differences.
    changed = dict(ours, Transitions=[{"Days": 31, "StorageClass": "GLACIER_IR"}, {"Days": 120, "StorageClass": "DEEP_ARCHIVE"}])
    assert normal_rule(ours) != normal_rule(changed)
    assert normal_rule(ours) != normal_rule(dict(ours, Status="Disabled"))


def foreign(rule_id, prefix="other/"):
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix}, "Expiration": {"Days": 900}}


def test_plan_keeps_rules_it_does_not_own_and_removes_its_stale_ones():
    spec = build_spec("prod", {"daily": {"expire_days": 14}}, abort_incomplete_multipart_days=0)
    ours = ["dbdr:daily@prod/", "dbdr:daily-data@prod/", "dbdr:daily-untagged@prod/"]
    current = Lifecycle([foreign("legal-hold-logs"), foreign("dbdr:daily@staging/"),
                         {"ID": "dbdr:weekly@prod/", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 9}},
                         {"ID": "dbdr:daily@prod/", "Status": "Enabled", "Filter": {"And": {"Prefix": "prod/", "Tags": tags(
                             ("dbdr-class", "daily"), ("dbdr-data", "false"))}}, "Expiration": {"Days": 7}}],
                        minimum_object_size="varies_by_storage_class")
    plan = plan_lifecycle(current, spec)
    assert plan.changed
    assert plan.removed == ["dbdr:weekly@prod/"]
    assert plan.updated == ["dbdr:daily@prod/"] and plan.added == ["dbdr:daily-data@prod/", "dbdr:daily-untagged@prod/"]
    assert [r["ID"] for r in plan.after.rules] == ["legal-hold-logs", "dbdr:daily@staging/"] + ours
    assert plan.after.minimum_object_size == "varies_by_storage_class"

    purged = plan_lifecycle(current, spec, purge=True)
    assert [r["ID"] for r in purged.after.rules] == ours
    assert sorted(purged.removed) == sorted(["legal-hold-logs", "dbdr:daily@staging/", "dbdr:weekly@prod/"])

    in_sync = plan_lifecycle(Lifecycle(plan.after.rules), spec)
    assert not in_sync.changed and in_sync.kept == ["legal-hold-logs", "dbdr:daily@staging/"]


def test_absent_removes_ours_and_the_named_raw_rules_only():
    spec = build_spec("prod", None, abort_incomplete_multipart_days=0, rules=[{"ID": "extra"}], allow_empty=True)
    current = Lifecycle([foreign("extra"), foreign("keep-me"), foreign("dbdr:daily@prod/", "prod/")])
    plan = plan_lifecycle(current, spec, absent=True)
    assert sorted(plan.removed) == ["dbdr:daily@prod/", "extra"]
    assert [r["ID"] for r in plan.after.rules] == ["keep-me"]
    assert not plan_lifecycle(Lifecycle([foreign("keep-me")]), spec, absent=True).changed


def test_more_than_a_thousand_rules_is_refused():
    spec = build_spec("", {"daily": {"expire_days": 3}})
    current = Lifecycle([foreign("r%04d" % i) for i in range(999)])
    with pytest.raises(InputError, match="S3 allows 1000"):
        plan_lifecycle(current, spec)


def test_raw_rules_replace_by_id_and_normal_rules_is_keyed_by_id():
    raw = {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    spec = build_spec("", None, abort_incomplete_multipart_days=0, rules=[raw])
    plan = plan_lifecycle(Lifecycle([dict(raw, Expiration={"Days": 10})]), spec)
    assert plan.updated == ["logs"] and plan.after.rules == [raw]
    assert list(normal_rules(plan.after.rules)) == ["logs"]


def test_cost_projection_in_the_steady_state():
    spec = build_spec("", {
        "daily": {"expire_days": 14},
        "weekly": {"transitions": [{"days": 30, "storage_class": "STANDARD_IA"}], "expire_days": 58},
        "yearly": {"transitions": [{"days": 1, "storage_class": "DEEP_ARCHIVE"}]}})
    cost = project_cost(spec, 10 * GIB, prices={"STANDARD": 0.02})
    tiers = cost["tiers"]
    # daily: 14 backups of 10 GiB in STANDARD at 0.02 = 2.80
    assert tiers["daily"]["bytes_by_storage_class"] == {"STANDARD": 140 * GIB}
    assert tiers["daily"]["monthly_cost"] == 2.8
    # weekly: 30/7 backups in STANDARD, 28/7 = 4 in STANDARD_IA: 42.857 GiB * 0.02 + 40 GiB * 0.0125 = 1.357
    assert tiers["weekly"]["bytes_by_storage_class"]["STANDARD_IA"] == 40 * GIB
    assert tiers["weekly"]["monthly_cost"] == 1.36
    # yearly, never expiring: after the 365-day horizon, 1 day in STANDARD and 364 in DEEP_ARCHIVE, of one backup a year
    assert tiers["yearly"]["bytes_by_storage_class"]["DEEP_ARCHIVE"] == round(10 * GIB * 364 / 365.25)
    assert cost["monthly_cost"] == round(2.8 + 0.857142857 + 0.5 + tiers["yearly"]["monthly_cost"], 2)
    assert any("keep growing" in a for a in cost["assumptions"])
    with pytest.raises(InputError, match="daily_backup_bytes"):
        project_cost(spec, -1)


def test_thin_margins_over_the_retention_policy_are_warnings():
    policy = {"keep_last": 30, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 7}
    spec = build_spec("", {"daily": {"expire_days": 16}, "weekly": {"expire_days": 95},
                           "monthly": {"expire_days": 400}, "yearly": {"expire_days": 3300}}, retention_policy=policy)
    text = " | ".join(spec.warnings)
    # daily: 15 needed, warned below 15 + 8; monthly: 396 needed, warned below 396 + 31
    assert "tiers.daily.expire_days=16 leaves little margin over the 15 days" in text
    assert "tiers.monthly.expire_days=400 leaves little margin over the 396 days" in text
    assert "tiers.weekly" not in text and "tiers.yearly" not in text
    assert "policy.keep_last=30 keeps the 30 newest backups" in text and "tiers.daily.expire_days=16" in text


@pytest.mark.parametrize("other, nests", [("", True), ("prod/eu/", True), ("pr/", False), ("production/", False),
                                          ("staging/", False)])
def test_nesting_prefixes_of_other_repositories_are_refused(other, nests):
    spec = build_spec("prod", {"daily": {"expire_days": 14}})
    current = Lifecycle([foreign("dbdr:daily@%s" % other, other)])
    if nests:
        with pytest.raises(InputError, match="which nest with 'prod/'"):
            plan_lifecycle(current, spec)
        # purge removes them; absent only removes ours: neither needs to refuse.
        assert plan_lifecycle(current, spec, purge=True).removed == ["dbdr:daily@%s" % other]
        assert plan_lifecycle(current, spec, absent=True).kept == ["dbdr:daily@%s" % other]
    else:
        assert plan_lifecycle(current, spec).kept == ["dbdr:daily@%s" % other]


def test_legacy_prefix_rules_are_written_in_the_filter_shape():
    legacy = {"ID": "old-tool", "Prefix": "tmp/", "Status": "Enabled", "Expiration": {"Days": 5}}
    spec = build_spec("prod", {"daily": {"expire_days": 14}},
                      rules=[{"ID": "raw-legacy", "Prefix": "x/", "Status": "Enabled", "Expiration": {"Days": 9}}])
    plan = plan_lifecycle(Lifecycle([legacy]), spec)
    for rule in plan.after.rules:
        assert "Prefix" not in rule and "Filter" in rule, rule
    assert by_rule_id(plan.after.rules)["old-tool"]["Filter"] == {"Prefix": "tmp/"}
    assert by_rule_id(plan.after.rules)["raw-legacy"]["Filter"] == {"Prefix": "x/"}
    assert "old-tool" in plan.kept and "old-tool" not in plan.updated   # the same rule, another spelling


def by_rule_id(rules):
    return dict((r["ID"], r) for r in rules)


@pytest.mark.parametrize("rule, message", [
    ({"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 3, "ExpiredObjectDeleteMarker": True}},
     "ExpiredObjectDeleteMarker cannot be combined with Days"),
    ({"ID": "a", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
      "Expiration": {"ExpiredObjectDeleteMarker": True}}, "ExpiredObjectDeleteMarker with a tag filter"),
    ({"ID": "a", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 0}},
     "NoncurrentDays must be at least 1"),
    ({"ID": "a", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {}}, "needs NoncurrentDays"),
    ({"ID": "a", "Status": "Enabled", "Filter": {}, "Transitions": ["GLACIER"]}, "needs Days and StorageClass"),
])
def test_more_raw_rules_s3_would_refuse(rule, message):
    with pytest.raises(InputError, match=message):
        build_spec("", None, rules=[rule])


def test_null_fields_of_raw_rules_are_dropped():
    spec = build_spec("", None, abort_incomplete_multipart_days=0, rules=[
        {"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "t/"}, "Expiration": {"Days": 3, "Date": None}}])
    assert spec.raw_rules == [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "t/"}, "Expiration": {"Days": 3}}]


class Bucket:
    """A lifecycle configuration as S3 serves it: `lag` reads show the previous one after a write,
    and `meanwhile` is written by someone else just after our first read."""

    def __init__(self, rules=(), lag=0, meanwhile=None):
        self.rules = list(rules)
        self.previous = None
        self.lag = lag
        self.meanwhile = meanwhile
        self.reads = 0
        self.writes = []

    def get_bucket_lifecycle_configuration(self, Bucket):  # noqa: N803 - boto3's names
        self.reads += 1
        if self.reads == 2 and self.meanwhile is not None:
            self.rules = self.rules + [self.meanwhile]
        shown = self.rules
        if self.previous is not None and self.lag > 0:
            self.lag -= 1
            shown = self.previous
        return {"Rules": [dict(r) for r in shown]}

    def put_bucket_lifecycle_configuration(self, Bucket, LifecycleConfiguration):  # noqa: N803
        self.previous, self.rules = self.rules, list(LifecycleConfiguration["Rules"])
        self.writes.append(self.rules)


def test_converge_replans_when_another_task_wrote_meanwhile_and_waits_for_propagation():
    spec = build_spec("prod", {"daily": {"expire_days": 14}}, abort_incomplete_multipart_days=0)
    bucket = Bucket([foreign("keep-me")], lag=2, meanwhile=foreign("dbdr:daily@staging/", "staging/"))
    waits = []
    plan, warnings = converge(bucket, "b", spec, sleep=waits.append)
    assert warnings == [] and plan.changed
    (written,) = bucket.writes
    assert [r["ID"] for r in written][:2] == ["keep-me", "dbdr:daily@staging/"]   # the other task's rule survives
    assert waits == [2, 2]   # two stale reads after the write

    # Check mode and no-op runs read once and never write.
    again = Bucket(written)
    plan, warnings = converge(again, "b", spec, check_mode=False)
    assert not plan.changed and again.writes == [] and again.reads == 1 and warnings == []
    checking = Bucket([])
    plan, warnings = converge(checking, "b", spec, check_mode=True)
    assert plan.changed and checking.writes == [] and warnings == []


def test_converge_warns_when_s3_never_shows_the_new_configuration():
    spec = build_spec("prod", {"daily": {"expire_days": 14}}, abort_incomplete_multipart_days=0)
    bucket = Bucket([], lag=10 ** 6)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    plan, warnings = converge(bucket, "b", spec, sleep=sleep, clock=lambda: now[0])
    assert plan.changed and len(bucket.writes) == 1
    assert warnings and "may still be propagating" in warnings[0]
