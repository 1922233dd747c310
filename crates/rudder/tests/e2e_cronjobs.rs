//! End to end: the CronJob controller in `rudder server` with simulated nodes, driven by the real
//! kubectl, on both store backends. A `*/1 * * * *` schedule fires at each minute boundary, so
//! the test waits for two of them (about one to two minutes) and checks all three concurrency
//! policies, history pruning, status and `kubectl create job --from=cronjob/...` in that window.

mod support;

use std::time::Duration;

use support::{wait_for_within, Backend, Cluster};

fn cron_job(name: &str, policy: &str, pod_annotations: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: "*/1 * * * *"
  concurrencyPolicy: {policy}
  successfulJobsHistoryLimit: 1
  failedJobsHistoryLimit: 1
  jobTemplate:
    metadata:
      labels:
        cron: {name}
    spec:
      template:
        metadata:
          annotations: {{{pod_annotations}}}
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: registry.k8s.io/pause:3.10
"#
    )
}

/// Names of the Jobs a CronJob made (by the template's label), oldest first.
fn jobs_of(c: &Cluster, cron: &str) -> Vec<String> {
    c.ok(&[
        "get",
        "jobs",
        "-l",
        &format!("cron={cron}"),
        "--sort-by=.metadata.name",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

fn events_of(c: &Cluster, cron: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=CronJob,involvedObject.name={cron}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

/// Polls `f` once a second for up to two and a half minutes (two schedule ticks and slack).
fn within_ticks<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for_within(what, Duration::from_secs(150), || {
        let v = f();
        if v.is_none() {
            std::thread::sleep(Duration::from_secs(1));
        }
        v
    })
}

fn cron_jobs_schedule_prune_and_concur(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    let quick = "sim.rudder.dev/complete-after: 1s";
    c.ok_stdin(&["apply", "-f", "-"], &cron_job("tick", "Allow", quick));
    c.ok_stdin(&["apply", "-f", "-"], &cron_job("slow", "Forbid", ""));
    c.ok_stdin(&["apply", "-f", "-"], &cron_job("swap", "Replace", ""));

    // First tick: one Job each, named after the scheduled minute, annotated with the time.
    let first = within_ticks("the first scheduled Job", || {
        jobs_of(&c, "tick").into_iter().next()
    });
    let minutes: i64 = first
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("job name {first}"));
    let scheduled = c.ok(&[
        "get",
        "job",
        &first,
        "-o",
        "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    ]);
    let owner = c.ok(&[
        "get",
        "job",
        &first,
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].controller}",
    ]);
    assert_eq!(owner, "CronJob/true");
    let secs = minutes * 60;
    assert!(scheduled.ends_with(":00Z"), "{scheduled}");
    let sched_secs = {
        let hms: Vec<i64> = scheduled[11..19]
            .split(':')
            .map(|x| x.parse().unwrap())
            .collect();
        hms[0] * 3600 + hms[1] * 60 + hms[2]
    };
    assert_eq!(
        secs.rem_euclid(86_400),
        sched_secs,
        "{first} vs {scheduled}"
    );

    // A manual run from the template: kubectl makes it, the controller leaves it be.
    c.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=60s",
    ]);

    // Second tick: tick's older successful Job is pruned to the history limit of 1.
    let second = within_ticks("tick's second Job, and the first pruned", || {
        let jobs = jobs_of(&c, "tick");
        let rest: Vec<&String> = jobs.iter().filter(|j| *j != "manual").collect();
        (rest.len() == 1 && *rest[0] != first).then(|| rest[0].clone())
    });
    c.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{second}"),
        "--timeout=60s",
    ]);
    within_ticks("lastSuccessfulTime and an empty active list", || {
        let s = c.ok(&[
            "get",
            "cronjob",
            "tick",
            "-o",
            "jsonpath={.status.lastScheduleTime}|{.status.lastSuccessfulTime}|{.status.active}",
        ]);
        let parts: Vec<&str> = s.split('|').collect();
        (!parts[0].is_empty() && !parts[1].is_empty() && parts[2].is_empty()).then_some(())
    });
    let ev = events_of(&c, "tick");
    for want in [
        format!("SuccessfulCreate: Created job {first}"),
        format!("SuccessfulCreate: Created job {second}"),
        format!("SawCompletedJob: Saw completed job: {first}, condition: Complete"),
        format!("SuccessfulDelete: Deleted job {first}"),
    ] {
        assert!(ev.contains(&want), "missing {want:?} in:\n{ev}");
    }

    // Forbid: the first Job never finishes, so the second tick starts nothing.
    within_ticks("slow's second tick refused", || {
        events_of(&c, "slow").contains("JobAlreadyActive: Not starting job because prior execution is running and concurrency policy is Forbid").then_some(())
    });
    assert_eq!(jobs_of(&c, "slow").len(), 1);
    // Replace: the running Job is deleted for the new one.
    let swapped = within_ticks("swap's first Job replaced", || {
        let ev = events_of(&c, "swap");
        ev.contains("SuccessfulDelete: Deleted job swap-")
            .then_some(ev)
    });
    let swap_jobs = within_ticks("swap down to its replacement", || {
        let j = jobs_of(&c, "swap");
        (j.len() == 1).then_some(j)
    });
    assert!(
        swapped.contains(&format!("SuccessfulCreate: Created job {}", swap_jobs[0])),
        "{swapped}"
    );

    // kubectl get shows the active count and the last schedule.
    let table = c.ok(&["get", "cronjob", "slow"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // The schedule is five words: then TIMEZONE, SUSPEND, ACTIVE, LAST SCHEDULE, AGE.
    assert_eq!(
        row[..9],
        ["slow", "*/1", "*", "*", "*", "*", "<none>", "False", "1"],
        "{table}"
    );
    assert_ne!(row[9], "<none>", "LAST SCHEDULE in:\n{table}");
}

on_both_backends!(cron_jobs_schedule_prune_and_concur);
