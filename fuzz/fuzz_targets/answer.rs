//! The charge point's answers to our own CALLs: `decode_frame` then `read_answer` for each kind
//! of server call (TriggerMessage, GetConfiguration, ChangeConfiguration). The first input byte
//! picks the call, the rest is the frame text.
//!
//! Checks beyond "no panic": a CALLRESULT or CALLERROR with the awaited uniqueId always
//! yields an answer, a CALL never does, and no frame answers a different uniqueId.
#![no_main]

use actors::server_call::{ServerCall, TriggerKind};
use libfuzzer_sys::fuzz_target;
use ocpp_meter::ocpp::outgoing::read_answer;
use ocpp_meter::ocpp::{decode_frame, Frame};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let call = match selector % 3 {
        0 => ServerCall::Trigger {
            message: TriggerKind::MeterValues,
            connector_id: Some(1),
        },
        1 => ServerCall::GetConfiguration { keys: Vec::new() },
        _ => ServerCall::ChangeConfiguration {
            key: "MeterValueSampleInterval".to_owned(),
            value: "60".to_owned(),
        },
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(frame) = decode_frame(text) else {
        return;
    };
    let id = frame.unique_id().to_owned();
    let answer = read_answer(&frame, &id, &call);
    match frame {
        Frame::Call { .. } => assert!(answer.is_none(), "a CALL answered our call"),
        _ => assert!(answer.is_some(), "an answer with our uniqueId was ignored"),
    }
    let other = format!("{id}-other");
    assert!(read_answer(&frame, &other, &call).is_none());
});
