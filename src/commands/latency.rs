//! LATENCY: DOCTOR, GRAPH, HISTORY, LATEST, RESET, HISTOGRAM, HELP, over
//! the latency monitor (`crate::latency`, fed by the dispatcher, active
//! expiry, eviction and write-behind) and the per-command histograms
//! (`shared::command_stats`).

use super::connection::container;
use super::flags::*;
use super::{reply_help, CommandSpec, Ctx, NO_KEYS};
use crate::error::{Error, Result};
use crate::latency::{analyze, graph, unix_seconds};

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("latency", -2, 0, NO_KEYS, container)
    .doc(
        "server",
        "2.8.13",
        "A container for latency diagnostics commands",
        "Depends on subcommand.",
    )
    .subcommands(LATENCY_SUBCOMMANDS)];

const FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const REPORT_TIPS: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_nodes",
    "response_policy:special",
];

static LATENCY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("latency|doctor", 2, FLAGS, NO_KEYS, latency_doctor)
        .tips(REPORT_TIPS)
        .doc(
            "server",
            "2.8.13",
            "Return a human readable latency analysis report.",
            "O(1)",
        ),
    CommandSpec::new("latency|graph", 3, FLAGS, NO_KEYS, latency_graph)
        .tips(REPORT_TIPS)
        .doc(
            "server",
            "2.8.13",
            "Return a latency graph for the event.",
            "O(1)",
        ),
    CommandSpec::new("latency|history", 3, FLAGS, NO_KEYS, latency_history)
        .tips(REPORT_TIPS)
        .doc(
            "server",
            "2.8.13",
            "Return timestamp-latency samples for the event.",
            "O(1)",
        ),
    CommandSpec::new("latency|latest", 2, FLAGS, NO_KEYS, latency_latest)
        .tips(REPORT_TIPS)
        .doc(
            "server",
            "2.8.13",
            "Return the latest latency samples for all events.",
            "O(1)",
        ),
    CommandSpec::new("latency|reset", -2, FLAGS, NO_KEYS, latency_reset)
        .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
        .doc(
            "server",
            "2.8.13",
            "Reset latency data for one or more events.",
            "O(1)",
        ),
    CommandSpec::new("latency|histogram", -2, FLAGS, NO_KEYS, latency_histogram)
        .tips(REPORT_TIPS)
        .doc(
            "server",
            "7.0.0",
            "Return the cumulative distribution of latencies of a subset of commands or all.",
            "O(N) where N is the number of commands with latency information being retrieved.",
        ),
    CommandSpec::new("latency|help", 2, LOADING | STALE, NO_KEYS, latency_help).doc(
        "server",
        "2.8.13",
        "Show helpful text about the different subcommands.",
        "O(1)",
    ),
];

/// LATENCY LATEST: `[event, time, latest ms, all-time max ms]` per event.
fn latency_latest(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let events = ctx.shared.store.latency().snapshot();
    ctx.out.array(events.len());
    for (event, series) in events {
        let latest = series.latest();
        ctx.out.array(4);
        ctx.out.bulk(event.as_bytes());
        ctx.out.int(latest.time);
        ctx.out.int(latest.latency_ms as i64);
        ctx.out.int(series.max_ms as i64);
    }
    Ok(())
}

/// LATENCY HISTORY event: `[time, ms]` pairs, oldest first (none for an
/// unknown event).
fn latency_history(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let Some((_, series)) = ctx.shared.store.latency().event(argv[2]) else {
        ctx.out.array(0);
        return Ok(());
    };
    let samples: Vec<_> = series.samples().collect();
    ctx.out.array(samples.len());
    for sample in samples {
        ctx.out.array(2);
        ctx.out.int(sample.time);
        ctx.out.int(sample.latency_ms as i64);
    }
    Ok(())
}

fn latency_graph(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let Some((event, series)) = ctx.shared.store.latency().event(argv[2]) else {
        let mut message = b"ERR No samples available for event '".to_vec();
        message.extend_from_slice(argv[2]);
        message.push(b'\'');
        return Err(Error::raw(String::from_utf8_lossy(&message).into_owned()));
    };
    let text = graph(&event, &series, unix_seconds());
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

/// LATENCY RESET [event ...]: how many events were forgotten.
fn latency_reset(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let monitor = ctx.shared.store.latency();
    let forgotten = if argv.len() == 2 {
        monitor.reset(None)
    } else {
        monitor.reset(Some(&argv[2..]))
    };
    ctx.out.int(forgotten as i64);
    Ok(())
}

/// LATENCY HISTOGRAM [command ...]: for each command with a histogram (of
/// those named: a container names its subcommands too), its calls and
/// cumulative counts by power-of-two microsecond bucket.
fn latency_histogram(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let stats = &ctx.shared.command_stats;
    let mut wanted: Vec<(usize, &'static str)> = Vec::new();
    if argv.len() == 2 {
        wanted.extend(super::stat_names());
    } else {
        for name in &argv[2..] {
            let spec = match name.iter().position(|&b| b == b'|') {
                Some(bar) => super::lookup(&name[..bar]).and_then(|container| {
                    container.subcommands.iter().find(|sub| {
                        sub.subcommand_name()
                            .as_bytes()
                            .eq_ignore_ascii_case(&name[bar + 1..])
                    })
                }),
                None => super::lookup(name),
            };
            let Some(spec) = spec else {
                continue;
            };
            for spec in std::iter::once(spec).chain(spec.subcommands) {
                wanted.push((super::stat_slot(spec), spec.name));
            }
        }
    }
    let found: Vec<_> = wanted
        .into_iter()
        .filter_map(|(slot, name)| stats.histogram(slot).map(|h| (name, h)))
        .collect();
    ctx.out.map(found.len());
    for (name, histogram) in found {
        ctx.out.bulk(name.as_bytes());
        ctx.out.map(2);
        ctx.out.bulk(b"calls");
        ctx.out.int(histogram.total() as i64);
        ctx.out.bulk(b"histogram_usec");
        let buckets = histogram.cumulative_log_buckets();
        ctx.out.map(buckets.len());
        for (micros, count) in buckets {
            ctx.out.int(micros as i64);
            ctx.out.int(count as i64);
        }
    }
    Ok(())
}

fn latency_doctor(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let report = doctor_report(ctx);
    ctx.out.verbatim("txt", report.as_bytes());
    Ok(())
}

/// Redis's `createLatencyReport`, for the events Larder records: the
/// `command`, `fast-command`, `expire-cycle` and `eviction-cycle` advice
/// as Redis gives it, and for `write-behind-flush` and `journal-fsync`
/// the disk advice Redis gives for its AOF writes.
fn doctor_report(ctx: &Ctx) -> String {
    let monitor = ctx.shared.store.latency();
    let events = monitor.snapshot();
    let (slower_than, threshold, hz) = {
        let config = ctx.shared.config.read();
        (
            config.slowlog_log_slower_than,
            config.latency_monitor_threshold,
            config.hz,
        )
    };
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string();
    }
    let mut report = String::new();
    let mut advices = 0;
    let (mut slowlog_enabled, mut slowlog_tuning, mut slowlog_inspect) = (false, false, false);
    let (mut scheduler, mut local_disk, mut ssd, mut disk_contention) =
        (false, false, false, false);
    let (mut hz_advice, mut large_objects, mut mass_eviction) = (false, false, false);
    let now = unix_seconds();
    for (number, (event, series)) in events.iter().enumerate() {
        if number == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let analysis = analyze(series, now);
        report.push_str(&format!(
            "{}. {event}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} sec). Worst all time event {}ms.",
            number + 1,
            analysis.samples,
            analysis.avg,
            analysis.mad,
            analysis.period as f64 / analysis.samples.max(1) as f64,
            series.max_ms
        ));
        match event.as_str() {
            "command" => {
                if slower_than < 0 {
                    slowlog_enabled = true;
                    advices += 1;
                } else if (slower_than / 1000) as u64 > threshold {
                    slowlog_tuning = true;
                    advices += 1;
                }
                slowlog_inspect = true;
                large_objects = true;
                advices += 2;
            }
            "fast-command" => {
                scheduler = true;
                advices += 1;
            }
            "write-behind-flush" | "journal-fsync" => {
                local_disk = true;
                disk_contention = true;
                ssd = true;
                advices += 3;
            }
            "expire-cycle" => {
                hz_advice = true;
                large_objects = true;
                advices += 2;
            }
            "eviction-cycle" => {
                mass_eviction = true;
                advices += 1;
            }
            _ => {}
        }
        report.push('\n');
    }
    if events.is_empty() && advices == 0 {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return report;
    }
    if advices == 0 {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return report;
    }
    report.push_str("\nI have a few advices for you:\n\n");
    if slowlog_enabled {
        report.push_str(&format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n", threshold * 1000));
    }
    if slowlog_tuning {
        report.push_str(&format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.\n", threshold * 1000));
    }
    if slowlog_inspect {
        report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    }
    if scheduler {
        report.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    }
    if local_disk {
        report.push_str("- It is strongly advised to use local disks for persistence, especially if you are using AOF. Remote disks provided by platform-as-a-service providers are known to be slow.\n");
    }
    if ssd {
        report.push_str("- SSD disks are able to reduce fsync latency, and total time needed for snapshotting and AOF log rewriting (resulting in smaller memory usage and smaller final AOF rewrite buffer flushes). With extremely high write load SSD disks can be a good option. However Redis should perform reasonably with high load using normal disks. Use this advice as a last resort.\n");
    }
    if disk_contention {
        report.push_str("- Try to lower the disk contention. This is often caused by other disk intensive processes running in the same computer (including other Redis instances).\n");
    }
    if hz_advice && hz < 100 {
        report.push_str("- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n");
    }
    if large_objects {
        report.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    if mass_eviction {
        report.push_str("- Sudden changes to the 'maxmemory' setting via 'CONFIG SET', or allocation of large objects via sets or sorted sets intersections, STORE option of SORT, Redis Cluster large keys migrations (RESTORE command), may create sudden memory pressure forcing the server to block trying to evict keys. \n");
    }
    report
}

fn latency_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(
        ctx,
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
    Ok(())
}
