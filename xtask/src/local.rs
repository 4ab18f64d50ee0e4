//! `cargo xtask local`: the one command a newcomer runs. Emulator, tables, bucket and the service
//! on http://127.0.0.1:8000, until Ctrl-C stops everything.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::aws::{with_emulator_env, Aws};
use crate::create_tables::{ensure_tables, Options};
use crate::emulator::{install_moto, Moto, MotoOptions};
use crate::flags::{target_dir, Local};

/// The bucket local mode creates in the emulator.
pub const LOCAL_BUCKET: &str = "recording-server-local";

impl Local {
    pub async fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let service = format!("http://127.0.0.1:{}", self.port);
        if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            bail!(
                "port {} is already in use (another `cargo xtask local`?): stop it or pass --port",
                self.port
            );
        }
        let target = target_dir(&sh.current_dir());
        let server = install_moto(sh, &target)?;
        let moto = Moto::start(sh, &server, &target.join("tools").join("run"), &MotoOptions::default())?;
        let aws = Aws::emulator(&moto.endpoint).await;

        let options = Options {
            prefix: String::new(),
            stage: "local".into(),
            protect: false,
            dry_run: false,
            timeout: Duration::from_secs(60),
        };
        for report in ensure_tables(&aws, &options).await {
            let report = report?;
            println!("table  {:<16} {}", report.name, report.action);
        }
        crate::bucket::ensure_private_bucket(&aws, LOCAL_BUCKET).await?;
        println!("bucket {LOCAL_BUCKET:<16} ready");

        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        cmd!(sh, "{cargo} build --quiet --package app").run().context("building the service failed")?;
        let port = self.port.to_string();
        let max_upload = self.max_upload_bytes.to_string();
        let service_cmd: Command =
            with_emulator_env(cmd!(sh, "{cargo} run --quiet --package app"), &moto.endpoint)
                .env("PORT", &port)
                .env("RECORD_BUCKET", LOCAL_BUCKET)
                .env("RECORD_MAX_UPLOAD_BYTES", &max_upload)
                // Local mode is for trying the API: the seed's unverified login is on.
                .env("RECORD_ALLOW_UNVERIFIED_LOGIN", "true")
                .into();
        let mut child = tokio::process::Command::from(service_cmd)
            .kill_on_drop(true)
            .spawn()
            .context("could not start the service")?;
        wait_for_health(&service, &mut child).await?;
        let login = demo_login(&service).await?;
        print_examples(&service, &moto.endpoint, &login);

        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("\nstopping the service and the emulator"),
            status = child.wait() => bail!("the service exited ({}); see its output above", status?),
        }
        child.kill().await.ok();
        drop(moto);
        Ok(())
    }
}

async fn wait_for_health(service: &str, child: &mut tokio::process::Child) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the service exited ({status}) before answering; see its output above");
        }
        if let Ok(r) = client.get(format!("{service}/health")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the service did not answer {service}/health within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The demo user's `Authorization` header value.
async fn demo_login(service: &str) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Login {
        user_id: String,
        auth_key: String,
    }
    let login: Login = reqwest::get(format!("{service}/login?social_id=12345&social_type=kakao"))
        .await?
        .error_for_status()?
        .json()
        .await
        .context("the demo login returned an unexpected body")?;
    Ok(format!("{} {}", login.user_id, login.auth_key))
}

fn print_examples(service: &str, emulator: &str, auth: &str) {
    println!(
        r#"
recording-server is running at {service} (Ctrl-C stops it and the emulator)

Point other tasks at this emulator from another terminal:
  export AWS_ENDPOINT_URL={emulator} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local

Try the API (a demo user, kakao_12345, is signed in):
  curl -s '{service}/login?social_id=12345&social_type=kakao'
  curl -s -X PUT -H 'Authorization: {auth}' -H 'Content-Type: audio/mp4' --data-binary 'hello audio' {service}/upload/record/memo.m4a
  curl -s -H 'Authorization: {auth}' '{service}/record/list?limit=10'
  curl -s -H 'Authorization: {auth}' {service}/record/<id from the list>
  curl -s -X DELETE -H 'Authorization: {auth}' {service}/record/<id from the list>
"#
    );
}
