//! `cargo xtask status --stage S`: what a stage runs, read from AWS (no state file): the public
//! URL, the function's configuration (memory, timeout, reserved concurrency, architecture), its
//! code (size, SHA-256, when it changed), the data it uses, and its published versions and
//! aliases. Reads only.

use aws_sdk_lambda::error::SdkError;
use serde::Serialize;

use crate::aws::ExplainExt;
use crate::catalogue::Task;
use crate::deploy::release::{self, LIVE};
use crate::flags::Status;
use crate::names::function_name;
use crate::Failure;

#[derive(Debug, Serialize)]
struct Report {
    stage: String,
    function: String,
    url: Option<String>,
    memory_mb: Option<i32>,
    timeout_s: Option<i32>,
    reserved_concurrency: Option<i32>,
    architecture: Option<String>,
    code_bytes: i64,
    code_sha256: Option<String>,
    last_modified: Option<String>,
    bucket: Option<String>,
    table_prefix: Option<String>,
    versions: Vec<Version>,
    aliases: Vec<Alias>,
    /// `$LATEST` is not what `live` serves: a deploy failed its smoke test or was interrupted
    /// (or a rollback moved `live` back). `None` without a `live` alias.
    latest_differs_from_live: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Version {
    version: String,
    description: String,
    code_sha256: Option<String>,
    last_modified: Option<String>,
}

#[derive(Debug, Serialize)]
struct Alias {
    name: String,
    version: String,
    description: String,
    /// The description of the version it names: commit, build and publish time.
    version_description: String,
}

impl Status {
    pub async fn run(self) -> anyhow::Result<()> {
        let aws = self.aws.load(Task::Status).await?;
        let name = function_name(&self.stage);
        let lambda = aws_sdk_lambda::Client::new(&aws.sdk);
        let config = match lambda.get_function_configuration().function_name(&name).send().await {
            Ok(config) => config,
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
                return Err(Failure::new(
                    1,
                    anyhow::anyhow!(
                        "no stage {} here: there is no function {name} (deploy it with `cargo xtask deploy --stage {}`)",
                        self.stage,
                        self.stage
                    ),
                )
                .into());
            }
            Err(e) => return Err(crate::aws::explain(e, "lambda:GetFunctionConfiguration", &name, &aws)),
        };
        let url = crate::deploy::url(&aws, &name).await?;
        let reserved = lambda
            .get_function_concurrency()
            .function_name(&name)
            .send()
            .await
            .explain("lambda:GetFunctionConcurrency", &name, &aws)?
            .reserved_concurrent_executions;
        // `$LATEST` as read above, then every published version (each with its configuration).
        let latest = release::Release::of(&config);
        let published = release::versions(&aws, &name).await?;
        let versions: Vec<Version> = std::iter::once(&latest)
            .chain(&published)
            .map(|v| Version {
                version: v.version.clone(),
                description: v.description.clone(),
                code_sha256: v.code_sha256().map(str::to_owned),
                last_modified: v.last_modified.clone(),
            })
            .collect();
        let mut aliases = Vec::new();
        let mut pages = lambda.list_aliases().function_name(&name).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.explain("lambda:ListAliases", &name, &aws)?;
            aliases.extend(page.aliases().iter().map(|a| {
                let version = a.function_version().unwrap_or_default().to_owned();
                let version_description =
                    published.iter().find(|v| v.version == version).map(|v| v.description.clone());
                Alias {
                    name: a.name().unwrap_or_default().to_owned(),
                    version,
                    description: a.description().unwrap_or_default().to_owned(),
                    version_description: version_description.unwrap_or_default(),
                }
            }));
        }
        let latest_differs_from_live = aliases.iter().find(|a| a.name == LIVE).map(|live| {
            let served = published.iter().find(|v| v.version == live.version);
            !served.is_some_and(|served| latest.same_as(served))
        });
        let variables = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
        let report = Report {
            stage: self.stage.clone(),
            function: name,
            url,
            memory_mb: config.memory_size(),
            timeout_s: config.timeout(),
            reserved_concurrency: reserved,
            architecture: config.architectures().first().map(|a| a.as_str().to_owned()),
            code_bytes: config.code_size(),
            code_sha256: config.code_sha256().map(str::to_owned),
            last_modified: config.last_modified().map(str::to_owned),
            bucket: variables.get(app::config::env::BUCKET).cloned(),
            table_prefix: variables.get(app::config::env::TABLE_PREFIX).cloned(),
            versions,
            aliases,
            latest_differs_from_live,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print(&report);
        }
        Ok(())
    }
}

fn print(r: &Report) {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    println!("stage     {}", r.stage);
    println!("function  {}", r.function);
    println!("url       {}", or_none(&r.url));
    let number = |v: Option<i32>, unit: &str| v.map_or("(not set)".to_owned(), |v| format!("{v}{unit}"));
    println!(
        "config    {} memory, {} timeout, reserved concurrency {}, {}",
        number(r.memory_mb, " MB"),
        number(r.timeout_s, " s"),
        number(r.reserved_concurrency, ""),
        or_none(&r.architecture)
    );
    println!(
        "code      {:.1} MiB, sha256 {}, changed {}",
        r.code_bytes as f64 / 1_048_576.0,
        or_none(&r.code_sha256),
        or_none(&r.last_modified)
    );
    println!(
        "data      bucket {}, table prefix {:?}",
        or_none(&r.bucket),
        r.table_prefix.clone().unwrap_or_default()
    );
    for v in &r.versions {
        let description =
            if v.description.is_empty() { String::new() } else { format!(" {}", v.description) };
        println!("version   {}{description} (changed {})", v.version, or_none(&v.last_modified));
    }
    if r.aliases.is_empty() {
        println!("aliases   (none)");
    }
    for a in &r.aliases {
        println!("alias     {} -> version {} ({})", a.name, a.version, a.version_description);
    }
    match r.latest_differs_from_live {
        Some(true) => println!(
            "latest    $LATEST differs from what `{LIVE}` serves: a deploy failed its smoke test or was interrupted, or a rollback ran; `cargo xtask deploy` publishes it again"
        ),
        Some(false) => println!("latest    $LATEST is what `{LIVE}` serves"),
        None => println!("latest    no `{LIVE}` alias: the URL serves $LATEST (deployed before aliases)"),
    }
}
