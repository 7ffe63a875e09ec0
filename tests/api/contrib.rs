//! The operator's kit stays true to the server: every metric the Grafana dashboard and the
//! Prometheus alert rules name is one the server exports, read from a scrape after a sequence
//! that makes every series appear.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{APP, Options, new_card, now, rotation_of, spawn_app_with};
use crate::support::{Backend, TestDb};

/// Series Prometheus makes itself rather than reading them from a target.
const SYNTHESIZED_BY_PROMETHEUS: &[&str] = &["up"];

const PROMQL_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan", // Aggregation operators, which may be followed by `by (…)` before their parenthesis.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The metric names an expression reads: identifiers that are not functions, keywords, label
/// names (in matchers and groupings), strings, durations or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut grouping_follows = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            '(' if grouping_follows => {
                grouping_follows = false;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let lowercase = word.to_ascii_lowercase();
                if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&lowercase.as_str()) {
                    grouping_follows = true;
                } else if next != Some(&'(') && !PROMQL_KEYWORDS.contains(&lowercase.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() => {
                // A number or a duration such as 5m: never a name.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn the_expression_reader_finds_metrics_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (le, endpoint) (rate(cardinal_http_requests_duration_seconds_bucket{job=~"$job", status=~"5.."}[$__rate_interval]))) / on(instance) group_left up > 0.25 and cardinal_x offset 5m"#;
    let expected: BTreeSet<String> =
        ["cardinal_http_requests_duration_seconds_bucket", "up", "cardinal_x"].map(str::to_owned).into();
    assert_eq!(metric_names(expr), expected);
}

fn dashboard_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/cardinal-dashboard.json"))
        .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has a query", panel["title"]);
        exprs.extend(targets.iter().map(|target| target["expr"].as_str().unwrap().to_owned()));
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            let query = variable["query"].as_str().unwrap();
            let inner = query.trim_start_matches("label_values(").split(',').next().unwrap();
            exprs.push(inner.to_owned());
        }
    }
    exprs
}

fn alert_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/prometheus/cardinal-alerts.yml"))
        .unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            assert!(rule["alert"].as_str().is_some_and(|name| !name.is_empty()), "{rule:?} is named");
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{rule:?} says what it means");
            exprs.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

/// Every series name in a text exposition.
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

async fn the_dashboard_and_the_alert_rules_name_only_exported_metrics(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Pointing a "replica" at the primary itself makes the replica series appear (it is never
    // read from: a database that is not replaying is never fresh).
    let replica = (backend == Backend::Postgres).then(|| db.url.clone());
    let mut settings =
        vec![("rate_limits.read.per_address_per_second", json!(1)), ("rate_limits.read.per_address_burst", json!(30))];
    if let Some(url) = replica {
        settings.push(("database.replica_urls", json!([url])));
    }
    let app = spawn_app_with(backend, Options { settings, database: Some(db), ..Options::default() }).await;

    let alice = new_card("alice");
    app.published("alice", &alice).await;
    let rotated = rotation_of("alice", &alice.id);
    app.published("alice", &rotated).await;
    let bob = new_card("bob");
    app.published("bob", &bob).await;
    let reader = app.user_token("reader");
    let first = app.lookup(&reader, &["alice", "bob"], None).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(app.lookup(&reader, &["alice", "bob"], Some(&etag)).await.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(app.revoke(&app.user_token("alice"), rotated.id.as_str(), None).await.status(), StatusCode::OK);
    assert_eq!(
        app.admin_revoke(&app.admin_token("root"), bob.id.as_str(), Some("left")).await.status(),
        StatusCode::OK
    );
    let t = now();
    let expired = app.token_with(&app.app_key, &app.app_kid, APP, "x", t - 7200, t - 3600);
    assert_eq!(app.lookup(&expired, &["x"], None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    let burst: Vec<_> = (0..40).map(|_| app.lookup(&reader, &["alice"], None)).collect();
    let statuses: Vec<StatusCode> = futures_util::future::join_all(burst).await.iter().map(|r| r.status()).collect();
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "the burst is refused in part: {statuses:?}");

    let scrape = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let exported = exported(&scrape);
    let mut missing = BTreeSet::new();
    let mut named = BTreeSet::new();
    for expr in dashboard_expressions().iter().chain(&alert_expressions()) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr} reads a metric");
        for name in names {
            let available = exported.contains(&name)
                || SYNTHESIZED_BY_PROMETHEUS.contains(&name.as_str())
                // Replica series exist only where replicas are configured (PostgreSQL).
                || (backend == Backend::Sqlite && name.starts_with("cardinal_replica_"));
            if !available {
                missing.insert(name.clone());
            }
            named.insert(name);
        }
    }
    assert!(missing.is_empty(), "named but not exported: {missing:?}\nexported: {exported:?}");
    for family in [
        "cardinal_http_requests_total",
        "cardinal_lookup_not_modified_total",
        "cardinal_db_pool_in_use_connections",
        "cardinal_token_rejections_total",
        "cardinal_rate_limited_total",
        "cardinal_chains_revoked_total",
    ] {
        assert!(named.contains(family), "the kit watches {family}");
    }
}

crate::on_both_backends!(the_dashboard_and_the_alert_rules_name_only_exported_metrics);
