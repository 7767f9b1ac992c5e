//! Revoke an access token: the Rust snippet of the Open Payments page "Revoke an access token",
//! against Latchkey or any Open Payments authorization server.
//!
//! ```sh
//! WALLET_ADDRESS_URL=... PRIVATE_KEY=path/to/key.pem KEY_ID=... \
//! ACCESS_TOKEN=... TOKEN_MANAGE_URL=... cargo run -p latchkey-client --example revoke_token
//! ```

use latchkey_client::{create_authenticated_client, get_env_var, load_env, ClientError};
use std::process::ExitCode;

async fn run() -> Result<(), ClientError> {
    load_env()?;

    // Initialize client
    let client = create_authenticated_client()?;

    // Revoke access token
    let access_token = get_env_var("ACCESS_TOKEN")?;
    let token_manage_url = get_env_var("TOKEN_MANAGE_URL")?;

    client
        .token()
        .revoke(&token_manage_url, Some(&access_token))
        .await?;

    // Output
    println!("Access token revoked successfully");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
