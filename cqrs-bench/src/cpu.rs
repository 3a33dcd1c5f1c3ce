//! CPU time read from Linux's `/proc/.../schedstat` (the first field: nanoseconds run): of this
//! thread, of this process, of given PostgreSQL backends, or of every local `postgres` process.
//! Where a benchmark is bound by the machine's cores rather than by waiting, these say whose
//! work it is. Elsewhere than Linux, and for a server on another machine, they read zero.

use std::path::Path;
use std::time::Duration;

/// The CPU time this process and the local `postgres` processes have run so far.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Every thread of this process.
    pub client: Duration,
    /// Every process named `postgres` on this machine (backends, WAL writer, checkpointer).
    pub server: Duration,
}

impl Cpu {
    /// The totals now.
    pub fn now() -> Cpu {
        Cpu {
            client: process_cpu(),
            server: postgres_cpu(),
        }
    }

    /// The CPU time run between `self` and now.
    pub fn since(self) -> Cpu {
        let now = Cpu::now();
        Cpu {
            client: now.client.saturating_sub(self.client),
            server: now.server.saturating_sub(self.server),
        }
    }

    /// How many cores were busy on average over `elapsed` (client and server together).
    pub fn cores(self, elapsed: Duration) -> f64 {
        (self.client + self.server).as_secs_f64() / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// The machine's CPU time counters (the first line of `/proc/stat`): all of it, and the part
/// the hypervisor gave to other guests ("steal"). On a shared virtual machine steal is what
/// moves a benchmark's figures from one run to the next; a run that reports it says how far
/// its figures can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineTicks {
    total: u64,
    steal: u64,
}

impl MachineTicks {
    /// The counters now; `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<MachineTicks> {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| MachineTicks::parse(stat.lines().next()?))
    }

    /// `cpu  user nice system idle iowait irq softirq steal …` (ticks).
    fn parse(line: &str) -> Option<MachineTicks> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        (ticks.len() == 8).then(|| MachineTicks {
            total: ticks.iter().sum(),
            steal: ticks[7],
        })
    }

    /// The share of the machine's CPU time stolen since `self` (0.0 to 1.0); `None` if the
    /// counters cannot be read or did not move.
    pub fn steal_since(self) -> Option<f64> {
        let now = MachineTicks::now()?;
        let total = now.total.checked_sub(self.total).filter(|&t| t > 0)?;
        Some(now.steal.saturating_sub(self.steal) as f64 / total as f64)
    }
}

/// The CPU time this thread has run. On a current-thread runtime this includes the
/// connections' tasks.
pub fn thread_cpu() -> Duration {
    schedstat(Path::new("/proc/thread-self/schedstat"))
}

/// The CPU time of every thread of this process.
pub fn process_cpu() -> Duration {
    schedstat_sum(Path::new("/proc/self/task"))
}

/// The CPU time of every process named `postgres` on this machine.
pub fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| is_postgres(&e.path()))
        .map(|e| schedstat(&e.path().join("schedstat")))
        .sum()
}

/// The CPU time the PostgreSQL backends `pids` have run: meaningful only when the server runs
/// on this machine (a pid that is not a local `postgres` process counts nothing).
pub fn backends_cpu(pids: &[i32]) -> Duration {
    pids.iter()
        .map(|pid| Path::new("/proc").join(pid.to_string()))
        .filter(|dir| is_postgres(dir))
        .map(|dir| schedstat(&dir.join("schedstat")))
        .sum()
}

/// Whether the process at `/proc/<pid>` is named `postgres`.
fn is_postgres(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("comm")).is_ok_and(|comm| comm.trim() == "postgres")
}

/// The sum of the run times of the threads under `dir` (`/proc/<pid>/task`).
fn schedstat_sum(dir: &Path) -> Duration {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .map(|e| schedstat(&e.path().join("schedstat")))
        .sum()
}

/// The run time in a `schedstat` file; zero if it cannot be read.
fn schedstat(path: &Path) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_thread_have_run() {
        if !Path::new("/proc/self/task").exists() {
            return; // not Linux: everything reads zero by design
        }
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(
            thread_cpu() >= Duration::from_millis(10),
            "{:?}",
            thread_cpu()
        );
        assert!(process_cpu() >= thread_cpu());
        assert_eq!(backends_cpu(&[std::process::id() as i32]), Duration::ZERO);
    }

    #[test]
    fn machine_ticks_read_the_aggregate_cpu_line() {
        let ticks = MachineTicks::parse("cpu  10 0 20 900 5 0 5 60 0 0").expect("parses");
        assert_eq!(
            ticks,
            MachineTicks {
                total: 1_000,
                steal: 60
            }
        );
        assert_eq!(MachineTicks::parse("cpu0 10 0 20 900 5 0 5 60 0 0"), None);
        assert_eq!(MachineTicks::parse("cpu  10 0 20"), None);
        assert_eq!(MachineTicks::parse("cpu  10 0 x 900 5 0 5 60"), None);
    }

    #[test]
    fn cores_is_cpu_over_wall_clock() {
        let cpu = Cpu {
            client: Duration::from_millis(500),
            server: Duration::from_millis(1_500),
        };
        assert_eq!(cpu.cores(Duration::from_secs(1)), 2.0);
    }
}
