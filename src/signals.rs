//! SIGINT, SIGTERM and SIGHUP, delivered to the main loop as [`Event::Signal`].

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle as SignalsHandle, Signals};

use crate::Event;

/// Dropping the handle stops listening for signals and joins the thread.
pub struct Handle {
    signals: SignalsHandle,
    _thread: jod_thread::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Ends `forever()` below; the thread field is joined after this body.
        self.signals.close();
    }
}

pub fn spawn(events: Sender<Event>) -> std::io::Result<Handle> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let handle = signals.handle();
    let thread = jod_thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = match signal {
                    SIGINT => "interrupt",
                    SIGTERM => "terminated",
                    _ => "hangup",
                };
                if events.send(Event::Signal(name)).is_err() {
                    return;
                }
            }
        })?;
    Ok(Handle {
        signals: handle,
        _thread: thread,
    })
}
