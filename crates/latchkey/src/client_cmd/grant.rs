//! `latchkey grant request|continue|cancel`.

use clap::{Args, ValueEnum};
use latchkey_client::access;
use latchkey_client::gnap::{AccessItem, Action, Amount, GrantResponse, OutgoingLimits};
use latchkey_client::interaction::redirect_finish;
use latchkey_client::{AuthenticatedClient, UnauthenticatedClient};

use super::common::{require, AuthArgs, CliError, OutputArgs, Report};

/// The resource type a grant asks access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessType {
    /// Create and read incoming payments (non-interactive).
    IncomingPayment,
    /// Create and read quotes (non-interactive).
    Quote,
    /// Send payments from a wallet address (needs the resource owner's consent).
    OutgoingPayment,
}

/// `latchkey grant request`.
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The authorization server's grant endpoint (a wallet address' `authServer`). Without it, it
    /// is read from the wallet address document of --identifier, or of the client.
    #[arg(long, env = "AUTH_SERVER_URL", value_name = "AS_URL")]
    pub url: Option<String>,
    /// The resource type.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub access_type: AccessType,
    /// Comma-separated actions (create, read, read-all, list, list-all, complete); default
    /// `create,read`.
    #[arg(long, value_delimiter = ',', value_name = "a,b")]
    pub actions: Vec<String>,
    /// The wallet address the access applies to (for outgoing-payment: the sending wallet,
    /// default the client's own).
    #[arg(long, value_name = "URL")]
    pub identifier: Option<String>,
    /// Ask for interaction even for incoming-payment or quote access.
    #[arg(long)]
    pub interact: bool,
    /// Where the resource owner's browser returns after consent (interaction finish method
    /// `redirect`); without it, poll with `latchkey grant continue`.
    #[arg(long, value_name = "URI")]
    pub finish_uri: Option<String>,
    /// The client nonce of the finish method (random when omitted; printed as FINISH_NONCE).
    #[arg(
        long,
        value_name = "NONCE",
        requires = "finish_uri",
        allow_hyphen_values = true
    )]
    pub finish_nonce: Option<String>,
    /// Outgoing-payment limit: maximum debit amount, in minor units (e.g. 500 = 5.00).
    #[arg(long, value_name = "VALUE", conflicts_with = "receive_amount")]
    pub debit_amount: Option<String>,
    /// Outgoing-payment limit: maximum receive amount, in minor units.
    #[arg(long, value_name = "VALUE")]
    pub receive_amount: Option<String>,
    /// Asset code of the limit amount (e.g. USD).
    #[arg(long, value_name = "CODE")]
    pub asset_code: Option<String>,
    /// Asset scale of the limit amount (e.g. 2).
    #[arg(long, value_name = "SCALE")]
    pub asset_scale: Option<u8>,
    /// Outgoing-payment limit: ISO 8601 repeating interval (e.g. R12/2026-01-01T00:00:00Z/P1M).
    #[arg(long, value_name = "INTERVAL")]
    pub interval: Option<String>,
    /// Outgoing-payment limit: the incoming payment URL payments must go to.
    #[arg(long, value_name = "URL")]
    pub receiver: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey grant continue`.
#[derive(Args, Debug)]
pub struct ContinueArgs {
    /// The grant's continuation URI.
    #[arg(long, env = "CONTINUE_URI", value_name = "URI")]
    pub url: Option<String>,
    /// The continuation access token.
    #[arg(
        long,
        env = "CONTINUE_ACCESS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
    /// The `interact_ref` from the finish redirect; without it, the grant is polled.
    #[arg(
        long,
        env = "INTERACT_REF",
        value_name = "REF",
        allow_hyphen_values = true
    )]
    pub interact_ref: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey grant cancel`.
#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The grant's continuation URI.
    #[arg(long, env = "CONTINUE_URI", value_name = "URI")]
    pub url: Option<String>,
    /// The continuation access token.
    #[arg(
        long,
        env = "CONTINUE_ACCESS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_actions(names: &[String]) -> Result<Vec<Action>, CliError> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(vec![Action::Create, Action::Read]);
    }
    names
        .iter()
        .map(|name| {
            access::parse_action(name).ok_or_else(|| {
                CliError::Config(format!(
                    "unknown action `{name}` (expected create, read, read-all, list, list-all, \
                     complete)"
                ))
            })
        })
        .collect()
}

fn limits(args: &RequestArgs) -> Result<Option<OutgoingLimits>, CliError> {
    let amount = |value: &Option<String>, flag: &str| -> Result<Option<Amount>, CliError> {
        let Some(value) = value else { return Ok(None) };
        let (Some(code), Some(scale)) = (&args.asset_code, args.asset_scale) else {
            return Err(CliError::Config(format!(
                "{flag} needs --asset-code and --asset-scale"
            )));
        };
        if value.parse::<u64>().is_err() {
            return Err(CliError::Config(format!(
                "{flag} `{value}` is not an amount in minor units (an unsigned integer)"
            )));
        }
        Ok(Some(Amount {
            value: value.clone(),
            asset_code: code.clone(),
            asset_scale: scale,
        }))
    };
    let limits = OutgoingLimits {
        receiver: args.receiver.clone(),
        interval: args.interval.clone(),
        debit_amount: amount(&args.debit_amount, "--debit-amount")?,
        receive_amount: amount(&args.receive_amount, "--receive-amount")?,
    };
    if limits == OutgoingLimits::default() {
        return Ok(None);
    }
    if args.access_type != AccessType::OutgoingPayment {
        return Err(CliError::Config(
            "limits (--debit-amount, --receive-amount, --interval, --receiver) apply to \
             --type outgoing-payment only"
                .into(),
        ));
    }
    Ok(Some(limits))
}

fn access_item(args: &RequestArgs, client: &AuthenticatedClient) -> Result<AccessItem, CliError> {
    let actions = parse_actions(&args.actions)?;
    let limits = limits(args)?;
    let identifier = args.identifier.as_deref();
    let item = match args.access_type {
        AccessType::IncomingPayment => access::incoming_payment(&actions, identifier),
        AccessType::Quote => access::quote(&actions, identifier),
        AccessType::OutgoingPayment => access::outgoing_payment(
            &actions,
            identifier.unwrap_or(client.wallet_address_url()),
            limits,
        ),
    };
    item.validate().map_err(CliError::Config)?;
    Ok(item)
}

fn random_nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `KEY = value` lines of a grant (or continuation) response.
fn grant_report(response: &GrantResponse) -> Result<Report, CliError> {
    let mut report = Report::json(response)?;
    if let Some(token) = &response.access_token {
        report = report
            .line("ACCESS_TOKEN", &token.value)
            .line("MANAGE_URL", &token.manage)
            .line_opt("EXPIRES_IN", token.expires_in);
    }
    if let Some(interact) = &response.interact {
        report = report
            .line("INTERACT_REDIRECT", &interact.redirect)
            .line("INTERACT_FINISH", &interact.finish);
    }
    Ok(report
        .line(
            "CONTINUE_ACCESS_TOKEN",
            &response.continue_.access_token.value,
        )
        .line("CONTINUE_URI", &response.continue_.uri)
        .line_opt("CONTINUE_WAIT", response.continue_.wait))
}

/// Runs `latchkey grant request`.
pub async fn request(args: &RequestArgs) -> Result<Report, CliError> {
    let client = args.auth.client(args.output.timeout())?;
    let item = access_item(args, &client)?;
    let url = match &args.url {
        Some(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => {
            let wallet = args
                .identifier
                .clone()
                .unwrap_or_else(|| client.wallet_address_url().to_string());
            let document = UnauthenticatedClient::with_timeout(args.output.timeout())?
                .wallet_address()
                .get(&wallet)
                .await?;
            eprintln!(
                "auth server {} (from wallet address {wallet})",
                document.auth_server
            );
            document.auth_server
        }
    };
    let interactive = args.interact
        || args.finish_uri.is_some()
        || args.access_type == AccessType::OutgoingPayment;
    let mut nonce = None;
    let request = if interactive {
        let finish = args.finish_uri.as_ref().map(|uri| {
            let n = args.finish_nonce.clone().unwrap_or_else(random_nonce);
            nonce = Some(n.clone());
            redirect_finish(uri, &n)
        });
        client.interactive_grant_request(vec![item], finish)
    } else {
        client.grant_request(vec![item])
    };
    let response = client.grant().request(&url, &request).await?;
    if response.interact.is_some() && !args.output.json {
        eprintln!(
            "The resource owner must approve: open INTERACT_REDIRECT in a browser, then run \
             `latchkey grant continue`{}.",
            if nonce.is_some() {
                " with the interact_ref of the finish redirect (--interact-ref)"
            } else {
                " (polling)"
            }
        );
    }
    Ok(grant_report(&response)?.line_opt("FINISH_NONCE", nonce))
}

/// Runs `latchkey grant continue`.
pub async fn continue_grant(args: &ContinueArgs) -> Result<Report, CliError> {
    let url = require(
        &args.url,
        "CONTINUE_URI",
        "--url",
        "the grant's continuation URI",
    )?;
    let token = require(
        &args.token,
        "CONTINUE_ACCESS_TOKEN",
        "--token",
        "the continuation access token",
    )?;
    let client = args.auth.client(args.output.timeout())?;
    let interact_ref = args
        .interact_ref
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let response = client
        .grant()
        .continue_grant(&url, Some(&token), interact_ref)
        .await?;
    if response.access_token.is_none() && !args.output.json {
        eprintln!("The grant is still pending; continue again after CONTINUE_WAIT seconds.");
    }
    grant_report(&response)
}

/// Runs `latchkey grant cancel`.
pub async fn cancel(args: &CancelArgs) -> Result<Report, CliError> {
    let url = require(
        &args.url,
        "CONTINUE_URI",
        "--url",
        "the grant's continuation URI",
    )?;
    let token = require(
        &args.token,
        "CONTINUE_ACCESS_TOKEN",
        "--token",
        "the continuation access token",
    )?;
    let client = args.auth.client(args.output.timeout())?;
    client.grant().cancel(&url, Some(&token)).await?;
    Ok(
        Report::json(&serde_json::json!({"cancelled": true}))?
            .message("Grant revoked successfully"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_default_and_errors() {
        assert_eq!(
            parse_actions(&[]).expect("default"),
            vec![Action::Create, Action::Read]
        );
        assert_eq!(
            parse_actions(&["read-all".into(), " list".into()]).expect("parsed"),
            vec![Action::ReadAll, Action::List]
        );
        let e = parse_actions(&["fly".into()]).expect_err("unknown");
        assert!(e.to_string().contains("`fly`"));
    }

    #[test]
    fn nonces_are_random_hex() {
        let a = random_nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_nonce());
    }
}
