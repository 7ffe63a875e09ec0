//! `cardinal token inspect`: what a token says, read without trusting it, and, when asked, what
//! the server would do with it.

use cardinal_card::b64;
use cardinal_client::TokenInspection;
use serde_json::{Value, json};

use crate::{Connection, Failure, client, exit, fail, output};

/// What the token states, unverified.
struct Stated {
    scheme: &'static str,
    alg: String,
    kid: Option<String>,
    app: Option<String>,
    subject: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

fn part(token: &str, index: usize, what: &str) -> Result<Value, Failure> {
    let encoded = token.split('.').nth(index).ok_or_else(|| fail(format!("malformed token: no {what}")))?;
    let bytes =
        b64::decode_url(encoded).ok_or_else(|| fail(format!("malformed token: the {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|e| fail(format!("malformed token: the {what} is not JSON: {e}")))
}

fn read(token: &str) -> Result<Stated, Failure> {
    let (scheme_word, jwt) = match token.trim().split_once(' ') {
        Some((scheme, jwt)) => (Some(scheme), jwt.trim()),
        None => (None, token.trim()),
    };
    if jwt.split('.').count() != 3 {
        return Err(fail("malformed token: a JWT has three dot-separated parts"));
    }
    let header = part(jwt, 0, "header")?;
    let claims = part(jwt, 1, "payload")?;
    let alg = header["alg"].as_str().unwrap_or("").to_owned();
    let virgil = match scheme_word {
        Some(word) => word.eq_ignore_ascii_case("virgil"),
        None => alg == "VEDS512",
    };
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let (app, subject) = if virgil {
        let app = claims["iss"].as_str().map(|iss| iss.strip_prefix("virgil-").unwrap_or(iss).to_owned());
        let subject = claims["sub"].as_str().map(|sub| sub.strip_prefix("identity-").unwrap_or(sub).to_owned());
        (app, subject)
    } else {
        (text(&claims["iss"]), text(&claims["sub"]))
    };
    Ok(Stated {
        scheme: if virgil { "Virgil" } else { "Bearer" },
        alg,
        kid: text(&header["kid"]),
        app,
        subject,
        iat: claims["iat"].as_i64(),
        exp: claims["exp"].as_i64(),
        nbf: claims["nbf"].as_i64(),
    })
}

/// What a reader can tell from the token alone, by this machine's clock.
fn local_findings(stated: &Stated, now: i64) -> Vec<String> {
    let mut findings = Vec::new();
    let expected = if stated.scheme == "Virgil" { "VEDS512" } else { "EdDSA" };
    if stated.alg != expected {
        findings.push(format!("the algorithm is {:?}; {} tokens must be {expected}", stated.alg, stated.scheme));
    }
    if stated.kid.is_none() {
        findings.push("there is no key id (kid)".into());
    }
    if stated.app.is_none() {
        findings.push("there is no issuer (the app)".into());
    }
    if stated.subject.is_none() {
        findings.push("there is no subject (the identity)".into());
    }
    match (stated.iat, stated.exp) {
        (Some(iat), Some(exp)) => {
            if exp <= iat {
                findings.push("it expires before it was issued".into());
            } else if exp.saturating_sub(iat) > 86_400 {
                findings.push(format!(
                    "its lifetime ({}) exceeds the default auth.max_token_lifetime_secs (24h)",
                    output::duration(exp.saturating_sub(iat))
                ));
            }
            if exp < now {
                findings.push(format!("it expired {} ago", output::duration(now - exp)));
            }
        }
        _ => findings.push("iat and exp are both required".into()),
    }
    if let Some(nbf) = stated.nbf.filter(|nbf| *nbf > now) {
        findings.push(format!("it is not valid for another {}", output::duration(nbf - now)));
    }
    findings
}

fn print_stated(stated: &Stated, findings: &[String], now: i64) {
    let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    println!("scheme:      {}", stated.scheme);
    println!("algorithm:   {}", stated.alg);
    println!("key id:      {}", show(&stated.kid));
    println!("app:         {}", show(&stated.app));
    println!("subject:     {}", show(&stated.subject));
    println!("issued at:   {}", output::time(stated.iat));
    if stated.nbf.is_some() {
        println!("not before:  {}", output::time(stated.nbf));
    }
    println!("expires at:  {}", output::time(stated.exp));
    if let Some(exp) = stated.exp.filter(|exp| *exp >= now) {
        println!("remaining:   {}", output::duration(exp - now));
    }
    if findings.is_empty() {
        println!("read alone, nothing is wrong with it (its signature and key are checked only by the server)");
    }
    for finding in findings {
        println!("problem:     {finding}");
    }
}

fn print_inspection(inspection: &TokenInspection) {
    if inspection.accepted {
        println!(
            "server:      accepted, as {} {:?} of app {}",
            inspection.role.as_deref().unwrap_or("-"),
            inspection.subject.as_deref().unwrap_or("-"),
            inspection.app.as_deref().unwrap_or("-")
        );
        return;
    }
    println!(
        "server:      refused with {} ({}): {}",
        inspection.code.map_or("unknown", |code| code.as_str()),
        inspection.status.unwrap_or(0),
        inspection.detail.as_deref().unwrap_or("-")
    );
    if let Some(reason) = &inspection.reason {
        println!("because:     {reason}");
    }
}

/// Decodes `token`; with `ask_server`, asks the server at `connection.url` (with the admin
/// token in `connection.token`) whether it would accept it.
pub(crate) async fn inspect(token: &str, ask_server: bool, connection: &Connection) -> Result<(), Failure> {
    let stated = read(token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    let findings = match &stated {
        Ok(stated) => local_findings(stated, now),
        Err(unreadable) => vec![unreadable.message.clone()],
    };
    let inspection = if ask_server {
        if connection.token.is_none() {
            return Err(Failure {
                code: exit::AUTH,
                message: "asking the server needs an admin token of the app: --token or CARDINAL_TOKEN".into(),
            });
        }
        Some(client(connection)?.inspect_token(token).await?)
    } else {
        None
    };
    if connection.json {
        let stated = stated.as_ref().ok();
        println!(
            "{}",
            json!({
                "scheme": stated.map(|s| s.scheme), "alg": stated.map(|s| &s.alg), "kid": stated.and_then(|s| s.kid.as_ref()),
                "app": stated.and_then(|s| s.app.as_ref()), "subject": stated.and_then(|s| s.subject.as_ref()),
                "iat": stated.and_then(|s| s.iat), "exp": stated.and_then(|s| s.exp), "nbf": stated.and_then(|s| s.nbf),
                "problems": findings, "server": inspection,
            })
        );
    } else {
        match &stated {
            Ok(stated) => print_stated(stated, &findings, now),
            Err(unreadable) => println!("unreadable: {}", unreadable.message),
        }
        if let Some(inspection) = &inspection {
            print_inspection(inspection);
        }
    }
    let refused = inspection.as_ref().map_or(!findings.is_empty(), |inspection| !inspection.accepted);
    if refused { Err(Failure { code: exit::AUTH, message: "the token would be refused".into() }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: Value, claims: Value) -> String {
        format!(
            "{}.{}.c2ln",
            b64::encode_url(header.to_string().as_bytes()),
            b64::encode_url(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn a_virgil_token_is_read_without_its_prefixes() {
        let jwt = token(
            json!({"alg": "VEDS512", "kid": "k1", "typ": "JWT", "cty": "virgil-jwt;v=1"}),
            json!({"iss": "virgil-chat", "sub": "identity-alice", "iat": 100, "exp": 200}),
        );
        let stated = read(&jwt).map_err(|f| f.message).unwrap();
        assert_eq!(
            (stated.scheme, stated.app.as_deref(), stated.subject.as_deref()),
            ("Virgil", Some("chat"), Some("alice"))
        );
        assert!(local_findings(&stated, 150).is_empty());
        assert_eq!(local_findings(&stated, 260), vec!["it expired 1m 0s ago".to_owned()]);
    }

    #[test]
    fn every_flaw_a_reader_can_see_is_named() {
        let jwt = token(json!({"alg": "HS256"}), json!({"iss": "chat", "iat": 100, "exp": 100 + 2 * 86_400}));
        let findings = local_findings(&read(&format!("Bearer {jwt}")).map_err(|f| f.message).unwrap(), 150);
        assert_eq!(findings.len(), 4, "{findings:?}");
        assert!(findings[0].contains("\"HS256\""), "{findings:?}");
        assert!(findings.iter().any(|f| f.contains("key id")), "{findings:?}");
        assert!(findings.iter().any(|f| f.contains("subject")), "{findings:?}");
        assert!(findings.iter().any(|f| f.contains("lifetime")), "{findings:?}");
        assert!(read("a.b").is_err());
        assert!(read("!!.e30.x").is_err());
    }
}
