//! Revoke (cancel) a grant request: the Rust snippet of the Open Payments page "Revoke a grant
//! request". The grant is finalized and every access token issued under it stops working.
//!
//! ```sh
//! WALLET_ADDRESS_URL=... PRIVATE_KEY=path/to/key.pem KEY_ID=... \
//! CONTINUE_ACCESS_TOKEN=... CONTINUE_URI=... cargo run -p latchkey-client --example revoke_grant
//! ```

use latchkey_client::{create_authenticated_client, get_env_var, load_env, ClientError};
use std::process::ExitCode;

async fn run() -> Result<(), ClientError> {
    load_env()?;

    // Initialize Open Payments client
    let client = create_authenticated_client()?;

    // Revoke grant
    let access_token = get_env_var("CONTINUE_ACCESS_TOKEN")?;
    let continue_uri = get_env_var("CONTINUE_URI")?;

    client
        .grant()
        .cancel(&continue_uri, Some(&access_token))
        .await?;

    // Output
    println!("Grant revoked successfully");
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
