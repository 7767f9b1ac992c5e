//! Sending each open-loop request at its due time (`latchkey bench --rate`).
//!
//! An open-loop latency is counted from the moment the timetable says the request is due, so a
//! generator that sends late adds its own lateness to every figure. Tokio's timer cannot wait
//! for less than a millisecond: "Sleep operates at millisecond granularity and should not be
//! used for tasks that require high-resolution timers" (`tokio::time::sleep` docs), and a
//! deadline is rounded up to the next tick. Measured against an idle server (introspection at
//! 1,000/s offered, 64 clients): p50 1.22 ms, where one client in a closed loop saw 0.08 ms.
//! The lateness also bunched the requests due within one millisecond into one burst.
//!
//! On Linux each virtual client therefore waits on a timer file descriptor of its own
//! (`timerfd`, nanosecond resolution) through Tokio's reactor; elsewhere, or when the kernel
//! refuses a timer, it falls back to Tokio's timer.

use std::time::Instant;

/// One virtual client's timer.
pub(crate) struct Pacer {
    #[cfg(target_os = "linux")]
    timer: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Pacer {
    /// A timer for one virtual client. Needs a Tokio runtime with IO enabled on Linux.
    pub(crate) fn new() -> Self {
        Pacer {
            #[cfg(target_os = "linux")]
            timer: linux::timer(),
        }
    }

    /// Returns at `due` (at once if it has passed).
    pub(crate) async fn until(&mut self, due: Instant) {
        let now = Instant::now();
        if due <= now {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(timer) = &self.timer {
            if linux::wait(timer, due - now).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep_until(due.into()).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A non-blocking monotonic timer registered with the reactor; `None` if either refuses.
    pub(super) fn timer() -> Option<AsyncFd<OwnedFd>> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .ok()?;
        // SAFETY: the descriptor is an `OwnedFd` moved into the `AsyncFd`: nothing else can
        // close it, so it stays open and `as_raw_fd` returns the same descriptor until the
        // `AsyncFd` is dropped, as `register_with_interest` requires.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
    }

    /// Arms `timer` to expire once after `wait` (not zero: a zero value disarms a timerfd) and
    /// waits for the expiry. Arming resets the expiry count, so an expiry left unread by an
    /// earlier wait cannot end this one early.
    pub(super) async fn wait(timer: &AsyncFd<OwnedFd>, wait: Duration) -> std::io::Result<()> {
        let once = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec::try_from(wait.max(Duration::from_nanos(1)))
                .map_err(|_| std::io::Error::other("wait too long for a timespec"))?,
        };
        timerfd_settime(timer.get_ref(), TimerfdTimerFlags::empty(), &once)?;
        loop {
            let mut ready = timer.readable().await?;
            let mut count = [0u8; 8];
            // "read(2) returns an unsigned 8-byte integer containing the number of expirations
            // that have occurred", or EAGAIN before the first (timerfd_create(2)); try_io turns
            // EAGAIN into "not ready yet" and clears the readiness it had cached.
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut count)?)) {
                Ok(result) => return result.map(|_| ()),
                Err(_not_yet) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    #[tokio::test]
    async fn returns_at_once_for_a_past_due_time() {
        let mut pacer = Pacer::new();
        let wait = pacer.until(Instant::now() - Duration::from_millis(5));
        let mut wait = std::pin::pin!(wait);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(wait.as_mut().poll(&mut context).is_ready());
    }

    #[tokio::test]
    async fn never_returns_before_the_due_time() {
        let mut pacer = Pacer::new();
        for micros in [1u64, 150, 400, 2_500, 150] {
            let due = Instant::now() + Duration::from_micros(micros);
            pacer.until(due).await;
            assert!(
                Instant::now() >= due,
                "returned before a due time {micros} µs away"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn has_a_timer_of_its_own_on_linux() {
        assert!(Pacer::new().timer.is_some(), "the kernel refused a timerfd");
    }
}
