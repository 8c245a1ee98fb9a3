//! One edit through the ledger, safe to kill at any point and run again:
//! the second run finds the first one's row and finishes it without a
//! second create.
//!
//! ```sh
//! kling sandbox --listen 127.0.0.1:8787 &
//! cargo run -p kling-ledger --example run -- jobs.sqlite3 snowy.mp4 http://127.0.0.1:8787/shortapi
//! ```

use std::time::Duration;

use kling::shortapi::ShortApi;
use kling::{Client, EditRequest, Media, Request, SecretString};
use kling_ledger::{Intent, Ledger, RunOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(ledger), Some(out), Some(base)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: run LEDGER OUT BASE_URL (a `kling sandbox`'s /shortapi)".into());
    };
    let key = std::env::var("SHORTAPI_KEY").unwrap_or_else(|_| "sandbox".to_owned());
    let client = Client::new(ShortApi::with_base_url(&base, SecretString::from(key))?);
    let ledger = Ledger::open(&ledger)?;
    let request = Request::from(EditRequest::new(
        Media::url("https://media.example/street.mp4"),
        "Make it snow on @Video1",
    ));
    // Every rule is checked before anything is recorded or sent.
    let checked = client.validate(&request)?;
    let options = RunOptions::default().timeout(Duration::from_secs(600));
    let done = ledger
        .run(&client, Intent::new(checked, out), &options)
        .await?;
    println!("{}", done.output.display());
    Ok(())
}
