//! `Event::from_json` on untrusted bytes: never panics, and whatever it accepts survives an
//! encode/decode round trip unchanged.
#![no_main]

use honeyport_event::{Event, EventKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ev) = Event::from_json(data) else {
        return;
    };
    let json = ev.to_json();
    assert!(
        !json.contains('\n'),
        "an event must encode to one line: {json}"
    );
    let back = match Event::from_json(json.as_bytes()) {
        Ok(b) => b,
        Err(e) => panic!("re-encoded event does not decode: {e}\nevent: {ev:?}\njson: {json}"),
    };
    assert_eq!(back, ev, "round trip changed the event; json: {json}");
    // Encoding is canonical: a second round gives the same text.
    assert_eq!(back.to_json(), json);
    // The people-facing rendering of payloads must not panic either.
    match &ev.kind {
        EventKind::Input { data, .. }
        | EventKind::Output { data, .. }
        | EventKind::TlsFailed { data, .. } => {
            let _ = data.escaped();
        }
        EventKind::TlsHandshake { alpn: Some(a), .. } => {
            let _ = a.escaped();
        }
        _ => {}
    }
});
