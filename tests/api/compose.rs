//! The container stack, checked by parsing (there is no Docker engine here): docker-compose.yml,
//! the Dockerfile and config/production.toml agree with each other and with the keys the code
//! reads. And the README documents every configuration key.

use std::collections::BTreeMap;

use cardinal_server::config::{DEFAULT_CONFIG, Settings};
use figment::Figment;
use figment::providers::{Format, Toml};
use serde_yaml::Value;

fn root(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

/// Every dotted key of the built-in defaults.
fn default_keys() -> Vec<String> {
    fn walk(prefix: &str, value: &figment::value::Value, out: &mut Vec<String>) {
        match value.as_dict() {
            Some(dict) => {
                for (key, value) in dict {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, value, out);
                }
            }
            None => out.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    let figment = Figment::from(Toml::string(DEFAULT_CONFIG));
    for (key, value) in figment.find_value("").ok().and_then(|v| v.into_dict()).unwrap_or_default() {
        walk(&key, &value, &mut keys);
    }
    keys
}

#[test]
#[expect(clippy::result_large_err, reason = "figment's Jail fixes the closure's error type")]
fn the_compose_stack_agrees_with_the_configuration_the_code_reads() {
    let compose: Value = serde_yaml::from_str(&root("docker-compose.yml")).unwrap();
    let services = &compose["services"];
    let (postgres, cardinal) = (&services["postgres"], &services["cardinal"]);
    assert!(postgres.is_mapping() && cardinal.is_mapping(), "services postgres and cardinal");

    // Health checks, and Cardinal waiting for a healthy database.
    for (name, service) in [("postgres", postgres), ("cardinal", cardinal)] {
        assert!(
            service["healthcheck"]["test"].as_sequence().is_some_and(|t| !t.is_empty()),
            "{name} has a health check"
        );
    }
    assert_eq!(cardinal["depends_on"]["postgres"]["condition"].as_str(), Some("service_healthy"));
    let volume = postgres["volumes"][0].as_str().unwrap();
    let (named, mount) = volume.split_once(':').unwrap();
    assert_eq!(mount, "/var/lib/postgresql/data");
    assert!(
        compose["volumes"][named].is_null() || compose["volumes"][named].is_mapping(),
        "volume {named} is declared"
    );
    assert!(compose["volumes"].as_mapping().unwrap().contains_key(named));

    // Every CARDINAL_ variable names a key the configuration has, and all of them together
    // (over production.toml, as the image runs) make valid settings.
    let keys = default_keys();
    let environment: BTreeMap<String, String> = serde_yaml::from_value(cardinal["environment"].clone()).unwrap();
    for name in environment.keys() {
        if let Some(rest) = name.strip_prefix("CARDINAL_") {
            let key = rest.to_lowercase().replace("__", ".");
            assert!(keys.contains(&key), "{name} sets {key}, which the configuration does not have");
        }
    }
    let database_url = &environment["DATABASE_URL"];
    let production = format!("{}/config/production.toml", env!("CARGO_MANIFEST_DIR"));
    let mut settings = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (name, value) in &environment {
            jail.set_env(name, value);
        }
        settings = Some(Settings::load(Some(std::path::Path::new(&production))).map_err(|e| e.to_string())?);
        Ok(())
    });
    let settings = settings.expect("the compose environment makes valid settings");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&settings.database.url), database_url.as_str());

    // The database URL names the postgres service with its credentials and database.
    let pg_env: BTreeMap<String, String> = serde_yaml::from_value(postgres["environment"].clone()).unwrap();
    let expected = format!(
        "postgres://{}:{}@postgres:5432/{}",
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]
    );
    assert_eq!(database_url, &expected);

    // Published ports are the ports Cardinal listens on; the health check asks that port.
    let ports: Vec<String> =
        cardinal["ports"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    let container_ports: Vec<u16> = ports.iter().map(|p| p.rsplit(':').next().unwrap().parse().unwrap()).collect();
    assert!(container_ports.contains(&port_of(&settings.server.listen)), "{ports:?}");
    assert!(container_ports.contains(&port_of(&settings.metrics.listen)), "{ports:?}");
    let check: Vec<String> = serde_yaml::from_value(cardinal["healthcheck"]["test"].clone()).unwrap();
    assert!(
        check.iter().any(|part| part.contains(&format!("127.0.0.1:{}/readyz", port_of(&settings.server.listen)))),
        "{check:?}"
    );

    // Docker waits longer than Cardinal's grace period before killing it.
    let stop_grace: u64 = cardinal["stop_grace_period"].as_str().unwrap().trim_end_matches('s').parse().unwrap();
    assert!(stop_grace > settings.server.shutdown_grace_secs);
}

#[test]
fn production_settings_turn_off_the_conveniences() {
    let settings: Settings = Figment::from(Toml::string(DEFAULT_CONFIG))
        .merge(Toml::string(&root("config/production.toml")))
        .extract()
        .expect("production.toml is valid");
    assert!(!settings.bootstrap.enabled);
    assert!(!settings.service.generate_signing_key);
    assert!(!settings.pythia.generate_secret, "every instance must share one provisioned Pythia secret");
    assert_eq!(settings.log.format, cardinal_server::config::LogFormat::Json);
    use secrecy::ExposeSecret;
    assert!(settings.database.url.expose_secret().starts_with("postgres://"));
    assert!(!settings.metrics.listen.is_empty(), "metrics off the public listener");
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_a_non_root_user_in_another() {
    let dockerfile = root("Dockerfile");
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].contains(" AS build"));
    assert!(stages[1].contains("slim"));
    let user = dockerfile.lines().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert_ne!(user.trim(), "root");
    assert!(dockerfile.contains("cargo build --release --locked --bin cardinal"));
    let config = dockerfile.lines().find_map(|l| l.strip_prefix("ENV CARDINAL_CONFIG=")).unwrap();
    assert!(dockerfile.contains(&format!("COPY config/production.toml {config}")));
}

#[test]
fn the_readme_documents_every_configuration_key() {
    let readme = root("README.md");
    let missing: Vec<String> = default_keys().into_iter().filter(|key| !readme.contains(&format!("`{key}`"))).collect();
    assert!(missing.is_empty(), "README.md's configuration reference lacks {missing:?}");
}
