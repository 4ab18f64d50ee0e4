//! `cargo xtask bench --power`, as an operator runs it (as root: it makes cgroups), on the dev
//! build so the test builds nothing new: the quota is applied (the cgroup's own accounting shows
//! the share Lambda gives each size), every route is timed and priced, and the recommendation
//! is a size whose every p99 is within the budget.

use std::process::Command;

#[test]
fn each_size_runs_under_its_cpu_share_and_is_priced() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--power",
            "--debug",
            "--memory",
            "256,1769",
            "--requests",
            "5",
            "--p99-budget",
            "10s",
            "--json",
        ])
        .output()
        .expect("run the xtask binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let sizes = report["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for size in sizes {
        let requested = size["cpu_share_requested"].as_f64().unwrap().min(1.0);
        let measured = size["cpu_share_measured"].as_f64().unwrap();
        assert!(
            (measured - requested).abs() <= 0.3 * requested,
            "{} MB: {measured:.3} of a core measured, {requested:.3} requested",
            size["memory_mb"]
        );
        assert!(size["init_ms"].as_f64().unwrap() > 0.0 && size["first_list_ms"].as_f64().unwrap() > 0.0);
        // The init's CPU, from the same accounting: some, and no more than the quota allowed in
        // the 100 ms periods the init touched (CFS lets a fresh group spend a whole period's
        // quota at once, so a 20 ms init may use 14.5 ms of CPU at 256 MB).
        let init_cpu = size["init_cpu_ms"].as_f64().unwrap();
        let periods = (size["init_ms"].as_f64().unwrap() / 100.0).ceil() + 1.0;
        assert!(init_cpu > 0.0 && init_cpu <= periods * 100.0 * requested * 1.3 + 10.0, "{size}");
        for route in ["list", "get", "upload"] {
            let r = &size["routes"][route];
            assert!(r["p50_ms"].as_f64().unwrap() <= r["p99_ms"].as_f64().unwrap(), "{route}: {r}");
            assert!(r["cpu_ms_per_request"].as_f64().unwrap() > 0.0, "{route}: {r}");
            assert!(
                r["cost_per_million_arm_usd"].as_f64().unwrap()
                    < r["cost_per_million_x86_usd"].as_f64().unwrap()
            );
        }
    }
    // With a 10 s budget both sizes qualify, so the cheaper one is chosen.
    let cost = |i: usize| -> f64 {
        ["list", "get", "upload"]
            .iter()
            .map(|r| sizes[i]["routes"][r]["cost_per_million_x86_usd"].as_f64().unwrap())
            .sum()
    };
    let cheaper = if cost(0) <= cost(1) { 256 } else { 1769 };
    assert_eq!(report["recommended_mb"], cheaper, "{report}");
}
