//! End to end: the Job controller in `rudder server` with simulated nodes (pods finish through
//! the `sim.rudder.dev/complete-after` / `exit-code` annotations), driven by the real kubectl,
//! on both store backends.

mod support;

use support::{wait_for, Backend, Cluster};

fn job(name: &str, extra_spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  template:\n    metadata:\n      annotations:\n{annotations}    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n"
    )
}

fn jp(c: &Cluster, name: &str, path: &str) -> String {
    c.ok(&["get", "job", name, "-o", &format!("jsonpath={path}")])
}

fn jobs_complete_fail_and_index(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "ok",
            "  completions: 3\n  parallelism: 2\n",
            "        sim.rudder.dev/complete-after: 1s\n",
        ),
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "bad",
            "  backoffLimit: 1\n",
            "        sim.rudder.dev/complete-after: 1s\n        sim.rudder.dev/exit-code: \"2\"\n",
        ),
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "idx",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
            "        sim.rudder.dev/complete-after: 1s\n",
        ),
    );
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=60s",
    ]);
    assert_eq!(jp(&c, "ok", "{.status.succeeded}/{.status.active}"), "3/0");
    assert!(!jp(&c, "ok", "{.status.completionTime}").is_empty());
    let labels = c.ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=ok",
        "-o",
        "jsonpath={.items[*].metadata.labels.job-name}",
    ]);
    assert!(labels.split_whitespace().count() >= 3, "{labels}");
    // Counted results release their pods from the tracking finalizer.
    wait_for("job-tracking finalizers removed", || {
        let f = c.ok(&[
            "get",
            "pods",
            "-l",
            "job-name=ok",
            "-o",
            "jsonpath={.items[*].metadata.finalizers}",
        ]);
        (!f.contains("batch.kubernetes.io/job-tracking")).then_some(())
    });
    let d = c.ok(&["describe", "job", "ok"]);
    assert!(
        d.contains("SuccessfulCreate")
            && d.contains("Created pod: ok-")
            && d.contains("Job completed"),
        "{d}"
    );

    c.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=60s"]);
    assert_eq!(
        jp(
            &c,
            "bad",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "BackoffLimitExceeded"
    );
    assert_eq!(
        jp(
            &c,
            "bad",
            "{.status.conditions[?(@.type==\"Failed\")].message}"
        ),
        "Job has reached the specified backoff limit"
    );
    assert_eq!(jp(&c, "bad", "{.status.failed}"), "2");
    // The replacement of the first failed pod waited out the 10 s pod failure back-off.
    let created = c.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=bad",
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        "jsonpath={.items[*].metadata.creationTimestamp}",
    ]);
    // Seconds of the day of an RFC 3339 `...THH:MM:SSZ` timestamp.
    let secs = |t: &str| {
        t[11..19]
            .split(':')
            .fold(0i64, |acc, x| acc * 60 + x.parse::<i64>().unwrap())
    };
    let ts: Vec<i64> = created.split_whitespace().map(secs).collect();
    assert_eq!(ts.len(), 2, "{created}");
    assert!(ts[1] - ts[0] >= 10, "{created}");

    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=60s",
    ]);
    assert_eq!(jp(&c, "idx", "{.status.completedIndexes}"), "0-2");
    let hosts = c.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=idx",
        "-o",
        "jsonpath={.items[*].spec.hostname}",
    ]);
    let mut hosts: Vec<&str> = hosts.split_whitespace().collect();
    hosts.sort();
    assert_eq!(hosts, ["idx-0", "idx-1", "idx-2"]);
}

/// `ttlSecondsAfterFinished: 0`: the finished Job and its pods are deleted.
fn finished_jobs_expire(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "brief",
            "  ttlSecondsAfterFinished: 0\n",
            "        sim.rudder.dev/complete-after: 1s\n",
        ),
    );
    wait_for("the finished Job deleted", || {
        let out = c.kubectl(&["get", "job", "brief"]);
        (out.code != 0 && out.stderr.contains("not found")).then_some(())
    });
}

/// A pod failure policy's FailJob rule on exit code 3 fails the Job at the first such pod,
/// through the FailureTarget condition, with upstream's reason and message; an Indexed Job with
/// `backoffLimitPerIndex: 1` retries each index once, then fails with its failed indexes.
fn jobs_pod_failure_policy_and_backoff_per_index(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "2"]);
    let exit3 =
        "        sim.rudder.dev/complete-after: 1s\n        sim.rudder.dev/exit-code: \"3\"\n";
    c.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "pfp",
            "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: Ignore\n      onPodConditions:\n      - type: DisruptionTarget\n    - action: FailJob\n      onExitCodes:\n        operator: In\n        values: [3]\n",
            exit3,
        ),
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "perindex",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  backoffLimitPerIndex: 1\n",
            exit3,
        ),
    );
    c.ok(&["wait", "--for=condition=failed", "job/pfp", "--timeout=60s"]);
    let pod = c.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=pfp",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let reasons = |name: &str, t: &str| {
        jp(
            &c,
            name,
            &format!("{{.status.conditions[?(@.type==\"{t}\")].reason}}|{{.status.conditions[?(@.type==\"{t}\")].message}}"),
        )
    };
    let want = format!(
        "PodFailurePolicy|Container c for pod default/{pod} failed with exit code 3 matching FailJob rule at index 1"
    );
    assert_eq!(reasons("pfp", "FailureTarget"), want);
    assert_eq!(reasons("pfp", "Failed"), want);
    assert_eq!(jp(&c, "pfp", "{.status.failed}/{.status.active}"), "1/0");
    let d = c.ok(&["describe", "job", "pfp"]);
    assert!(d.contains("PodFailurePolicy"), "{d}");

    // Each index: a pod, its replacement after the 10 s back-off, then the index has failed.
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/perindex",
        "--timeout=90s",
    ]);
    assert_eq!(
        reasons("perindex", "Failed"),
        "FailedIndexes|Job has failed indexes"
    );
    assert_eq!(
        jp(
            &c,
            "perindex",
            "{.status.failedIndexes}/{.status.failed}/{.status.succeeded}"
        ),
        "0-2/6/0"
    );
    let counts = c.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=perindex",
        "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.batch\\.kubernetes\\.io/job-index-failure-count}{\" \"}{end}",
    ]);
    let mut counts: Vec<&str> = counts.split_whitespace().collect();
    counts.sort();
    assert_eq!(counts, ["0", "0", "0", "1", "1", "1"]);
}

on_both_backends!(
    jobs_complete_fail_and_index,
    finished_jobs_expire,
    jobs_pod_failure_policy_and_backoff_per_index
);
