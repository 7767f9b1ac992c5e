//! Rotate an access token: the Rust snippet of the Open Payments page "Rotate an access token".
//! The old token stops working; the new one has the same rights and a fresh lifetime.
//!
//! ```sh
//! WALLET_ADDRESS_URL=... PRIVATE_KEY=path/to/key.pem KEY_ID=... \
//! ACCESS_TOKEN=... TOKEN_MANAGE_URL=... cargo run -p latchkey-client --example rotate_token
//! ```

use latchkey_client::{create_authenticated_client, get_env_var, load_env, ClientError};
use std::process::ExitCode;

async fn run() -> Result<(), ClientError> {
    load_env()?;

    // Initialize client
    let client = create_authenticated_client()?;

    // Rotate access token
    let access_token = get_env_var("ACCESS_TOKEN")?;
    let token_manage_url = get_env_var("TOKEN_MANAGE_URL")?;

    let response = client
        .token()
        .rotate(&token_manage_url, Some(&access_token))
        .await?;

    // Output
    println!("Rotated access token: {:#?}", response.access_token);
    println!("ACCESS_TOKEN = {}", response.access_token.value);
    println!("MANAGE_URL = {}", response.access_token.manage);
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
