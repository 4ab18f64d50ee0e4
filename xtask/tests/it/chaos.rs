//! A short chaos run, as an operator types it: `cargo xtask bench --load --faults ...` with every
//! kind of fault at a nonzero rate, 4 clients for a few seconds, on the dev build (so the test
//! builds nothing new). The seed is printed, so a failure can be repeated with `--seed`.
//!
//! The benchmark itself fails the run on a 500, a dropped connection, a request that outlasts the
//! budget, a failed audit, debris the service never logged, or a second reconcile that writes;
//! the test checks the report says what it did.

use std::process::Command;

#[test]
fn under_every_kind_of_fault_nothing_is_lost_and_reconcile_leaves_nothing() {
    let mut seed = [0u8; 8];
    getrandom_04::fill(&mut seed).unwrap();
    let seed = u64::from_le_bytes(seed).to_string();
    eprintln!("chaos seed {seed} (cargo xtask bench --load --faults ... --seed {seed} repeats it)");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--load",
            "--debug",
            "--faults",
            "throttle=8%,reset=4%,stall=2%,error=6%,lost=4%",
            "--seed",
            &seed,
            "--concurrency",
            "4",
            "--duration",
            "4s",
            "--soak",
            "0s",
            "--json",
        ])
        .output()
        .expect("run the xtask binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "seed {seed}:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let faults = &report["faults"];
    assert_eq!(faults["seed"].as_u64().unwrap().to_string(), seed);
    // Every kind was injected into something.
    let kinds: std::collections::BTreeSet<&str> =
        faults["injected"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["error", "lost", "reset", "stall", "throttle"],
        "{faults}"
    );
    // Clients saw only successes and 503s.
    for level in report["levels"].as_array().unwrap() {
        for (route, outcomes) in level["outcomes"].as_object().unwrap() {
            for status in outcomes.as_object().unwrap().keys() {
                assert!(status == "200" || status == "503", "{route} answered {status}: {level}");
            }
        }
    }
    // Every piece of debris was logged; the repair leaves the audit clean; a second writes nothing.
    for debris in faults["debris"].as_array().unwrap() {
        assert!(debris["logged"].is_string(), "unlogged debris: {debris}");
    }
    let after = &faults["audit_after"];
    for field in
        ["lost", "unexpected", "undownloadable", "resurrected", "rows_without_object", "miscounted_users"]
    {
        assert_eq!(after[field], 0, "{field}: {after}");
    }
    assert_eq!(after["rows"], after["objects"], "{after}");
    assert_eq!(faults["second_reconcile_writes"], 0);
}
