//! `cargo xtask rollback --stage S [--to VERSION]`: smoke-test a version that is already
//! published (by default the one `previous` names), then point `live` at it and `previous` at
//! what `live` served. Nothing is built or uploaded: it takes seconds.

use std::time::Instant;

use serde::Serialize;

use crate::catalogue::Task;
use crate::deploy::release::{self, LIVE, PREVIOUS};
use crate::flags::Rollback;
use crate::names::{function_name, Names};
use crate::Failure;

#[derive(Debug, Serialize)]
struct Report {
    stage: String,
    function: String,
    from: String,
    to: String,
    description: String,
    seconds: f64,
    smoke: release::Smoke,
}

impl Rollback {
    pub async fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let aws = self.aws.load(Task::Rollback).await?;
        let function = function_name(&self.stage);
        let stop = |message: String| -> anyhow::Error { Failure::new(1, anyhow::anyhow!(message)).into() };
        let Some(deployed) = crate::stage::deployed(&aws, &self.stage).await? else {
            return Err(stop(format!(
                "no stage {} here: there is no function {function} (deploy it with `cargo xtask deploy --stage {}`)",
                self.stage, self.stage
            )));
        };
        let Some(live) = release::alias(&aws, &function, LIVE).await? else {
            return Err(stop(format!(
                "stage {} has no `{LIVE}` alias yet, so nothing to roll back: `cargo xtask deploy --stage {}` creates it",
                self.stage, self.stage
            )));
        };
        let previous = release::alias(&aws, &function, PREVIOUS).await?;
        let target = match (self.to, &previous) {
            (Some(to), _) => to.to_string(),
            (None, Some(previous)) => previous.version.clone(),
            (None, None) => {
                return Err(stop(format!(
                    "stage {} has no previous version (`{LIVE}` -> {} is its first): pass --to VERSION (see `cargo xtask status --stage {}`)",
                    self.stage, live.version, self.stage
                )))
            }
        };
        if target == live.version {
            return Err(stop(format!("`{LIVE}` already serves version {target}: nothing to roll back")));
        }
        let Some(config) = release::configuration(&aws, &function, &target).await? else {
            return Err(stop(format!(
                "{function} has no version {target} (pruned?): `cargo xtask status --stage {}` lists the versions kept",
                self.stage
            )));
        };
        let account = crate::aws::account(&aws).await?;
        let names =
            Names::new(&self.stage, &account, &aws.region(), &deployed.table_prefix, Some(&deployed.bucket));
        // Invoked within the target version's own timeout.
        let smoke = release::smoke(&aws, &function, &target, config.timeout().unwrap_or(60)).await?;
        release::report(&smoke, &names, self.json)?;
        release::promote(&aws, &function, &target, Some(&live), previous.as_ref()).await?;
        let report = Report {
            stage: self.stage.clone(),
            function,
            from: live.version.clone(),
            to: target,
            description: config.description.clone(),
            seconds: started.elapsed().as_secs_f64(),
            smoke,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "rolled back stage {}: `{LIVE}` version {} -> {} ({}), `{PREVIOUS}` -> {}, in {:.1} s",
                report.stage, report.from, report.to, report.description, report.from, report.seconds
            );
        }
        Ok(())
    }
}
