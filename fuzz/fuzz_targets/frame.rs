//! `decode_frame` on any text a charge point can send in a WebSocket text message.
//!
//! Checks beyond "no panic":
//! - a decoded frame carries exactly the uniqueId the array's second element holds;
//! - a refused frame still carries that uniqueId whenever the text is a JSON array whose
//!   second element is a string, so the CALLERROR reaches the right request;
//! - the CALLERROR built for a refused frame is itself a well-formed CALLERROR frame that
//!   decodes back to the same uniqueId, however odd the id (escapes, unicode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocpp_meter::ocpp::{decode_frame, encode_frame_error, Frame};
use serde_json::value::RawValue;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What a general JSON parser says the uniqueId is, when the text is an array. `Value`
    // refuses numbers beyond f64 that a frame may legally carry in its payload, so such
    // arrays are read element by element instead.
    let expected_id = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(parts)) => match parts.get(1) {
            Some(Value::String(id)) => Some(id.clone()),
            _ => None,
        },
        Ok(_) => None,
        Err(_) => serde_json::from_str::<Vec<&RawValue>>(text)
            .ok()
            .and_then(|parts| serde_json::from_str::<String>(parts.get(1)?.get()).ok()),
    };
    match decode_frame(text) {
        Ok(frame) => {
            let Some(id) = expected_id else {
                panic!("decoded a frame whose uniqueId is no string: {text:?}");
            };
            assert_eq!(frame.unique_id(), id, "decoded uniqueId differs");
        }
        Err(err) => {
            if let Some(id) = expected_id {
                assert_eq!(
                    err.unique_id(),
                    id,
                    "refused frame lost its uniqueId: {err}"
                );
            }
            let reply = encode_frame_error(&err);
            match decode_frame(&reply) {
                Ok(Frame::CallError { unique_id, .. }) => {
                    assert_eq!(unique_id, err.unique_id(), "CALLERROR changed the uniqueId")
                }
                other => panic!("CALLERROR {reply:?} does not decode as one: {other:?}"),
            }
        }
    }
});
