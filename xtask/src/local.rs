//! `cargo xtask local`: the one command a newcomer runs. Emulator, tables, bucket and the service
//! on http://127.0.0.1:8000, until Ctrl-C stops everything.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::aws::{with_emulator_env, Aws};
use crate::create_tables::{ensure_tables, Options};
use crate::emulator::{install_moto, Moto, MotoOptions};
use crate::flags::Local;
use crate::toolchain::target_dir;

/// The bucket local mode creates in the emulator.
pub const LOCAL_BUCKET: &str = "recording-server-local";

impl Local {
    pub async fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // Ctrl-C, SIGTERM or SIGHUP at any point (even during set-up) ends here, dropping the
        // emulator and the service, instead of killing xtask before its guards can clean up.
        tokio::select! {
            result = self.serve(sh) => result,
            signal = crate::signals::stop_requested() => {
                println!("\n{signal}: stopped the service and the emulator");
                Ok(())
            }
        }
    }

    async fn serve(self, sh: &Shell) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}", self.port);
        if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            bail!(
                "port {} is already in use (another `cargo xtask local`?): stop it or pass --port",
                self.port
            );
        }
        let target = target_dir(&sh.current_dir());
        let server = install_moto(sh, &target)?;
        let options = MotoOptions { request_log: true, ..MotoOptions::default() };
        let moto = Moto::start(sh, &server, &target.join("tools").join("run"), &options)?;
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
        // The web recorder on this origin PUTs and plays straight from the bucket.
        let origins = [url.clone(), format!("http://localhost:{}", self.port)];
        crate::bucket::ensure_cors(&aws, LOCAL_BUCKET, None, &origins).await?;
        println!("bucket {LOCAL_BUCKET:<16} ready");

        let cargo = crate::toolchain::cargo();
        // Only the service's binary, resolved with the whole workspace's features (every build
        // of this workspace resolves the same ones), so it shares every dependency with
        // `cargo xtask` itself and with the tests.
        cmd!(sh, "{cargo} build --quiet --workspace --bin app")
            .run()
            .context("building the service failed")?;
        let binary = target.join("debug").join("app");
        let port = self.port.to_string();
        let settings = app::config::Settings {
            max_upload_bytes: self.max_upload_bytes,
            oidc_providers: self.oidc_providers.clone().unwrap_or_default(),
            // Local mode is for trying the API: the seed's unverified login is on.
            allow_unverified_login: true,
            ..app::config::Settings::new(LOCAL_BUCKET)
        };
        let mut service: Command = with_emulator_env(cmd!(sh, "{binary}"), &moto.endpoint)
            .envs(settings.to_env())
            .env("PORT", &port)
            .into();
        crate::signals::stop_with_parent(&mut service);
        let mut child = tokio::process::Command::from(service)
            .kill_on_drop(true)
            .spawn()
            .context("could not start the service")?;
        wait_for_health(&url, &mut child).await?;
        let demo = Demo::create(&url).await?;
        print_examples(&url, &moto.endpoint, &demo);

        let status = child.wait().await?;
        drop(moto);
        bail!("the service exited ({status}); see its output above")
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

/// A signed-in demo user with one recording, so every printed example works as printed.
struct Demo {
    auth: String,
    record_id: String,
}

impl Demo {
    async fn create(service: &str) -> anyhow::Result<Demo> {
        let http = reqwest::Client::new();
        let auth = unverified_login(&http, service, "12345").await?;
        let upload: serde_json::Value = http
            .put(format!("{service}/upload/record/welcome.m4a"))
            .header("Authorization", &auth)
            .header("Content-Type", "audio/mp4")
            .body("a demo recording")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let record_id =
            upload["record"]["id"].as_str().context("the demo upload returned no record id")?.to_owned();
        Ok(Demo { auth, record_id })
    }
}

/// Sign `social_id` in through the seed's unverified `GET /login`; returns the `Authorization`
/// header value ("<user_id> <auth_key>").
pub async fn unverified_login(
    http: &reqwest::Client,
    service: &str,
    social_id: &str,
) -> anyhow::Result<String> {
    let login: serde_json::Value = http
        .get(format!("{service}/login?social_id={social_id}&social_type=kakao"))
        .send()
        .await?
        .error_for_status()
        .context("the demo login failed")?
        .json()
        .await?;
    match (login["user_id"].as_str(), login["auth_key"].as_str()) {
        (Some(user), Some(key)) => Ok(format!("{user} {key}")),
        _ => bail!("the login answer has no user_id/auth_key: {login}"),
    }
}

fn print_examples(service: &str, emulator: &str, demo: &Demo) {
    let Demo { auth, record_id } = demo;
    println!(
        r#"
recording-server is running at {service} (Ctrl-C stops it and the emulator)

Record in your browser: open {service}/ and sign in with any demo name.

Point other tasks at this emulator from another terminal:
  export AWS_ENDPOINT_URL={emulator} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local

Try the API. A demo user, kakao_12345, is signed in and has uploaded welcome.m4a:
  curl -s '{service}/login?social_id=12345&social_type=kakao'
  curl -s -X PUT -H 'Authorization: {auth}' -H 'Content-Type: audio/mp4' --data-binary 'hello audio' {service}/upload/record/memo.m4a
  curl -s -H 'Authorization: {auth}' '{service}/record/list?limit=10'
  curl -s -H 'Authorization: {auth}' {service}/record/{record_id}
  curl -s -X DELETE -H 'Authorization: {auth}' {service}/record/{record_id}
  curl -s -X POST -H 'Authorization: {auth}' {service}/logout
"#
    );
}
