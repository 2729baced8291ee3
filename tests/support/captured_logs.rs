//! Log capture for tests: the server's log lines, per test thread, for checking what it
//! logs and what it leaves out.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, Once};

thread_local! {
    /// Buffer that receives the log lines emitted on this thread, while a test captures.
    static CAPTURE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// Log output of the server captured for one test, for checking what it logs and what it
/// leaves out.
///
/// One global subscriber serves all tests and writes each line into the buffer of the
/// thread that emitted it. A subscriber per test (`set_default`) would miss events whose
/// callsites another test's thread reached first: tracing caches those as never enabled
/// while only one scoped subscriber exists.
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures events at debug level or above emitted on this thread until the value
    /// drops. Use with a current-thread runtime, where the server's tasks run on the
    /// test's thread.
    pub fn start() -> Self {
        static GLOBAL_SUBSCRIBER: Once = Once::new();
        GLOBAL_SUBSCRIBER.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadCaptureWriter)
                .init();
        });

        let buffer = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(buffer.clone()));
        Self(buffer)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Drop for CapturedLogs {
    fn drop(&mut self) {
        CAPTURE.with(|capture| *capture.borrow_mut() = None);
    }
}

/// Writer that appends to the current thread's capture buffer, or discards without one.
struct ThreadCaptureWriter;

impl Write for ThreadCaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(buffer) = capture.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
