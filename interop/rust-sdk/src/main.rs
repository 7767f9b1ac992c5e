//! The crates.io `open-payments` 0.2.0 client against a running Latchkey (`latchkey serve
//! --dev`). Reads `WALLET_ADDRESS_URL`, `PRIVATE_KEY` (a PEM file path), `KEY_ID` and
//! `PRIVATE_URL` (Latchkey's introspection listener). Prints one line per check; exits non-zero
//! on the first failure.
//!
//! Only the SDK's public API is used for the Open Payments calls; plain `reqwest` is used for
//! what the SDK does not do: introspection (a resource server's job) and the resource owner's
//! consent in a browser.

use open_payments::client::{
    AuthenticatedClient, AuthenticatedResources, ClientConfig, UnauthenticatedClient,
    UnauthenticatedResources,
};
use open_payments::types::{
    AccessItem, AccessTokenRequest, ContinueResponse, GrantRequest, GrantResponse,
    IncomingPaymentAction, InteractFinish, InteractRequest, OutgoingPaymentAction, QuoteAction,
};
use serde_json::{json, Value};
use std::error::Error;
use std::process::ExitCode;

type Failure = Box<dyn Error>;

fn env(name: &str) -> Result<String, Failure> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

fn check(condition: bool, what: &str) -> Result<(), Failure> {
    if condition {
        println!("ok   {what}");
        Ok(())
    } else {
        Err(format!("FAILED: {what}").into())
    }
}

fn sdk<T>(result: open_payments::Result<T>, what: &str) -> Result<T, Failure> {
    result.map_err(|e| format!("{what}: the SDK call failed: {e:?}").into())
}

struct Introspection {
    http: reqwest::Client,
    url: String,
}

impl Introspection {
    async fn get(&self, token: &str) -> Result<Value, Failure> {
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&json!({ "access_token": token }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer)
    }

    async fn active(&self, token: &str) -> Result<bool, Failure> {
        Ok(self.get(token).await?["active"] == json!(true))
    }
}

/// Keeps the cookies a response sets; returns its `Location`, if any.
fn absorb(cookies: &mut Vec<String>, response: &reqwest::Response) -> Option<String> {
    for set in response.headers().get_all("set-cookie") {
        let Some(pair) = set.to_str().ok().and_then(|s| s.split(';').next()) else {
            continue;
        };
        let name = pair.split('=').next().unwrap_or_default().to_string();
        cookies.retain(|c| !c.starts_with(&format!("{name}=")));
        if !pair.ends_with('=') {
            cookies.push(pair.to_string());
        }
    }
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string)
}

/// Approves the grant behind `redirect` in a cookie-keeping browser; returns the finish
/// redirect's URL.
async fn consent(public_url: &str, redirect: &str) -> Result<String, Failure> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut cookies: Vec<String> = Vec::new();
    let absolute = |l: &str| {
        if l.starts_with("http") {
            l.to_string()
        } else {
            format!("{public_url}{l}")
        }
    };
    let start = http.get(redirect).send().await?;
    let consent_url =
        absolute(&absorb(&mut cookies, &start).ok_or("the interaction start did not redirect")?);
    let page = http
        .get(&consent_url)
        .header("cookie", cookies.join("; "))
        .send()
        .await?;
    absorb(&mut cookies, &page);
    let html = page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let at = html
        .find(marker)
        .ok_or("no csrf field on the consent page")?
        + marker.len();
    let csrf = html[at..].split('"').next().unwrap_or_default().to_string();
    let decided = http
        .post(&consent_url)
        .header("cookie", cookies.join("; "))
        .form(&[("csrf", csrf.as_str()), ("decision", "accept")])
        .send()
        .await?;
    let finish =
        absolute(&absorb(&mut cookies, &decided).ok_or("the consent decision did not redirect")?);
    let finished = http
        .get(&finish)
        .header("cookie", cookies.join("; "))
        .send()
        .await?;
    Ok(absorb(&mut cookies, &finished).ok_or("the finish step did not redirect to the client")?)
}

async fn run() -> Result<(), Failure> {
    let wallet = env("WALLET_ADDRESS_URL")?;
    let config = ClientConfig {
        key_id: env("KEY_ID")?,
        private_key_path: env("PRIVATE_KEY")?.into(),
        jwks_path: None,
        wallet_address_url: wallet.clone(),
    };
    if !config.private_key_path.is_file() {
        // The SDK would silently generate (and write) a new key at a missing path.
        return Err(format!(
            "PRIVATE_KEY {} is not a file",
            config.private_key_path.display()
        )
        .into());
    }
    let client = sdk(AuthenticatedClient::new(config), "client")?;
    let introspection = Introspection {
        http: reqwest::Client::new(),
        url: env("PRIVATE_URL")?,
    };

    // Wallet address document: where to ask for grants.
    let document = sdk(
        UnauthenticatedClient::new()
            .wallet_address()
            .get(&wallet)
            .await,
        "wallet address",
    )?;
    let auth_server = document.auth_server.clone();
    check(
        !auth_server.is_empty(),
        "wallet address document read, authServer found",
    )?;
    let keys = sdk(
        UnauthenticatedClient::new()
            .wallet_address()
            .get_keys(&document)
            .await,
        "jwks.json",
    )?;
    check(!keys.keys.is_empty(), "wallet address key set read")?;

    // 1. Non-interactive grant.
    let request = GrantRequest::new(
        AccessTokenRequest {
            access: vec![AccessItem::IncomingPayment {
                actions: vec![IncomingPaymentAction::Create, IncomingPaymentAction::Read],
                identifier: Some(wallet.clone()),
            }],
        },
        None,
    );
    let granted = sdk(
        client.grant().request(&auth_server, &request, None).await,
        "grant",
    )?;
    let GrantResponse::WithToken {
        access_token,
        continue_,
        ..
    } = granted
    else {
        return Err("the incoming-payment grant did not return a token".into());
    };
    check(
        introspection.active(&access_token.value).await?,
        "grant request: the issued token is active",
    )?;

    // 2. Rotate.
    let rotated = sdk(
        client
            .token()
            .rotate(&access_token.manage, Some(&access_token.value))
            .await,
        "rotate",
    )?
    .access_token;
    check(
        !introspection.active(&access_token.value).await?
            && introspection.active(&rotated.value).await?
            && rotated.manage != access_token.manage,
        "rotate: old token inactive, new token active, new manage URL",
    )?;
    let again = client
        .token()
        .rotate(&access_token.manage, Some(&access_token.value))
        .await;
    check(
        matches!(&again, Err(e) if e.code == Some(400)),
        "rotate of the rotated-away token refused with 400",
    )?;

    // 3. Revoke (twice: idempotent).
    sdk(
        client
            .token()
            .revoke(&rotated.manage, Some(&rotated.value))
            .await,
        "revoke",
    )?;
    check(
        !introspection.active(&rotated.value).await?,
        "revoke: the token is inactive",
    )?;
    sdk(
        client
            .token()
            .revoke(&rotated.manage, Some(&rotated.value))
            .await,
        "revoke again",
    )?;
    check(true, "revoke again: 204 (idempotent)")?;

    // 4. Cancel the grant of a live token.
    let request = GrantRequest::new(
        AccessTokenRequest {
            access: vec![AccessItem::Quote {
                actions: vec![QuoteAction::Create, QuoteAction::Read],
            }],
        },
        None,
    );
    let GrantResponse::WithToken {
        access_token,
        continue_: quote_continue,
        ..
    } = sdk(
        client.grant().request(&auth_server, &request, None).await,
        "quote grant",
    )?
    else {
        return Err("the quote grant did not return a token".into());
    };
    check(
        introspection.active(&access_token.value).await?,
        "quote grant: token active",
    )?;
    sdk(
        client
            .grant()
            .cancel(
                &quote_continue.uri,
                Some(&quote_continue.access_token.value),
            )
            .await,
        "cancel",
    )?;
    check(
        !introspection.active(&access_token.value).await?,
        "cancel: the grant's token is inactive",
    )?;
    sdk(
        client
            .grant()
            .cancel(
                &quote_continue.uri,
                Some(&quote_continue.access_token.value),
            )
            .await,
        "cancel again",
    )?;
    check(true, "cancel again: 204 (idempotent)")?;
    // The first grant's continuation still works for cancelling it (its token was revoked).
    sdk(
        client
            .grant()
            .cancel(&continue_.uri, Some(&continue_.access_token.value))
            .await,
        "cancel of the first grant",
    )?;

    // 5. Interactive grant: consent, finish redirect, continue with interact_ref.
    let public_url = auth_server.trim_end_matches('/').to_string();
    let request = GrantRequest::new(
        AccessTokenRequest {
            access: vec![AccessItem::OutgoingPayment {
                actions: vec![OutgoingPaymentAction::Create, OutgoingPaymentAction::Read],
                identifier: wallet.clone(),
                limits: None,
            }],
        },
        Some(InteractRequest {
            start: vec!["redirect".into()],
            finish: Some(InteractFinish {
                method: "redirect".into(),
                uri: "http://client.example/return".into(),
                nonce: "rust-sdk-interop-nonce".into(),
            }),
        }),
    );
    let GrantResponse::WithInteraction {
        interact,
        continue_,
    } = sdk(
        client.grant().request(&auth_server, &request, None).await,
        "interactive grant",
    )?
    else {
        return Err("the outgoing-payment grant did not ask for interaction".into());
    };
    check(true, "outgoing-payment grant: interaction requested")?;
    let back = consent(&public_url, &interact.redirect).await?;
    let interact_ref = url::Url::parse(&back)?
        .query_pairs()
        .find(|(k, _)| k == "interact_ref")
        .map(|(_, v)| v.into_owned())
        .ok_or("no interact_ref in the finish redirect")?;
    let continued = sdk(
        client
            .grant()
            .continue_grant(
                &continue_.uri,
                &interact_ref,
                Some(&continue_.access_token.value),
            )
            .await,
        "continue",
    )?;
    let ContinueResponse::WithToken {
        access_token,
        continue_,
        ..
    } = continued
    else {
        return Err("the continuation did not issue a token".into());
    };
    check(
        introspection.active(&access_token.value).await?,
        "continue with interact_ref: the issued token is active",
    )?;
    sdk(
        client
            .grant()
            .cancel(&continue_.uri, Some(&continue_.access_token.value))
            .await,
        "cancel of the interactive grant",
    )?;
    check(
        !introspection.active(&access_token.value).await?,
        "cancel of the interactive grant: token inactive",
    )?;

    // 6. Directed identity: the client's key inline instead of its wallet address.
    let jwk = client.public_jwk();
    let request = GrantRequest::new(
        AccessTokenRequest {
            access: vec![AccessItem::IncomingPayment {
                actions: vec![IncomingPaymentAction::Read],
                identifier: Some(wallet.clone()),
            }],
        },
        None,
    );
    let GrantResponse::WithToken { access_token, .. } = sdk(
        client
            .grant()
            .request(&auth_server, &request, Some(&jwk))
            .await,
        "grant with an inline JWK",
    )?
    else {
        return Err("the directed-identity grant did not return a token".into());
    };
    let info = introspection.get(&access_token.value).await?;
    check(
        info["active"] == json!(true) && info["client"]["jwk"]["kid"] == json!(jwk.kid),
        "directed identity: token active, introspection names the inline key",
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("open-payments 0.2.0 drove grant, rotate, revoke, cancel and continue against Latchkey");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
