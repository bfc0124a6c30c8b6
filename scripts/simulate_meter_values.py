#!/usr/bin/env python3
"""OCPP 1.6J charge point simulator for ocpp-meter.

Connects to the central system, boots, reports its connector Available, starts a transaction,
sends MeterValues with the five measurands the server is tuned for (Energy.Active.Import.Register,
Power.Active.Import, Voltage, Current.Import, Temperature; three phases where it applies) every
--interval seconds, --count times, optionally pushing one reading past its alert threshold
(--breach), then stops the transaction and disconnects. Every frame sent and received is printed.

It is built on the `ocpp` library with its JSON-schema validation on, so a payload the OCPP 1.6
schemas reject fails here too. It answers the calls the server makes on its own
(GetConfiguration, ChangeConfiguration, TriggerMessage) from an in-memory configuration.

    python3 scripts/simulate_meter_values.py ws://localhost:8080 TEST-CP-METER
    python3 scripts/simulate_meter_values.py ws://localhost:8080 CP1 --interval 1 --count 3 --breach power

Exit status: 0 when every call was answered as expected, 1 otherwise (the reason is printed).
"""

import argparse
import asyncio
import base64
import logging
import math
import os
import ssl
import sys
from datetime import datetime, timezone

try:
    import websockets
    from ocpp.routing import after, on
    from ocpp.v16 import ChargePoint as OcppChargePoint
    from ocpp.v16 import call, call_result
    from ocpp.v16.enums import (
        Action,
        ChargePointErrorCode,
        ChargePointStatus,
        ConfigurationStatus,
        MessageTrigger,
        Reason,
        RegistrationStatus,
        TriggerMessageStatus,
    )
except ImportError as missing:  # pragma: no cover - shown to a user without the venv
    # Run as documented (`python3 scripts/...`) after the README's one-line venv install: switch
    # to the repository's .venv interpreter when the current one lacks the packages.
    here = os.path.dirname(os.path.abspath(__file__))
    venv_python = os.path.join(here, "..", ".venv", "bin", "python3")
    if os.path.exists(venv_python) and not os.environ.get("OCPP_SIMULATOR_REEXEC"):
        os.environ["OCPP_SIMULATOR_REEXEC"] = "1"
        os.execv(venv_python, [venv_python, *sys.argv])
    sys.exit(
        f"error: {missing}. Install the simulator's packages first:\n"
        "  python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt\n"
        "and run it with .venv/bin/python3 scripts/simulate_meter_values.py ..."
    )

# Readings of a healthy 11 kW three-phase session, and the values that breach the server's
# default thresholds (config.toml [alerts]): power_max_w 50000, temperature_max_c 70,
# voltage 207..253 V, current_max_a 80.
NORMAL = {"voltage": 230.0, "current": 16.0, "temperature": 35.0}
BREACH = {
    "power": "per-phase power 19 kW, total 57 kW (power_max_w 50000)",
    "temperature": "temperature 85 Celsius (temperature_max_c 70)",
    "voltage": "voltage 262 V on L1 (voltage_max_v 253)",
    "current": "current 95 A on L2 (current_max_a 80)",
}
PHASES = ("L1", "L2", "L3")
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Voltage",
    "Current.Import",
    "Temperature",
)


def now_iso():
    """UTC timestamp with milliseconds, as OCPP wants it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def charge_point_url(base, charge_point_id):
    """The base URL plus /ocpp/<id>, unless the URL already names the charge point."""
    trimmed = base.rstrip("/")
    if trimmed.endswith("/" + charge_point_id):
        return trimmed
    return f"{trimmed}/ocpp/{charge_point_id}"


def fmt(value):
    """A reading as OCPP's decimal string, without float noise."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


class Meter:
    """The simulated meter: the register grows with the power drawn between readings."""

    def __init__(self, start_wh):
        self.energy_wh = float(start_wh)

    def reading(self, breaches, context, elapsed_secs):
        """One meterValue entry with every measurand; `breaches` are the values pushed past
        their thresholds in this reading."""
        voltage = {phase: NORMAL["voltage"] for phase in PHASES}
        current = {phase: NORMAL["current"] for phase in PHASES}
        temperature = NORMAL["temperature"]
        if "voltage" in breaches:
            voltage["L1"] = 262.0
        if "current" in breaches:
            current["L2"] = 95.0
        if "temperature" in breaches:
            temperature = 85.0
        power = {phase: voltage[phase] * current[phase] for phase in PHASES}
        if "power" in breaches:
            power = {phase: 19000.0 for phase in PHASES}
        total_w = sum(power.values())
        self.energy_wh += total_w * elapsed_secs / 3600.0

        def value(measurand, val, unit, phase=None, location="Outlet"):
            sampled = {
                "value": fmt(val),
                "context": context,
                "format": "Raw",
                "measurand": measurand,
                "location": location,
                "unit": unit,
            }
            if phase:
                sampled["phase"] = phase
            return sampled

        sampled = [value("Energy.Active.Import.Register", math.floor(self.energy_wh), "Wh")]
        sampled.append(value("Power.Active.Import", total_w, "W"))
        sampled += [value("Power.Active.Import", power[p], "W", p) for p in PHASES]
        sampled += [value("Voltage", voltage[p], "V", p) for p in PHASES]
        sampled += [value("Current.Import", current[p], "A", p) for p in PHASES]
        sampled.append(value("Temperature", temperature, "Celsius", location="Body"))
        return {"timestamp": now_iso(), "sampled_value": sampled}


class SimulatedChargePoint(OcppChargePoint):
    """A charge point with one connector whose calls and answers go through the `ocpp` library
    (schemas checked both ways)."""

    def __init__(self, charge_point_id, connection, args):
        super().__init__(charge_point_id, connection, response_timeout=args.timeout)
        self.args = args
        self.meter = Meter(args.meter_start)
        self.connector_id = args.connector
        self.transaction_id = None
        self.status = ChargePointStatus.available
        # What GetConfiguration answers and ChangeConfiguration may change: (value, readonly).
        self.configuration = {
            "HeartbeatInterval": (str(300), False),
            "MeterValueSampleInterval": (fmt(args.interval), False),
            "MeterValuesSampledData": (",".join(MEASURANDS), False),
            "MeterValuesSampledDataMaxLength": ("10", True),
            "ClockAlignedDataInterval": ("0", False),
            "MeterValuesAlignedData": ("Energy.Active.Import.Register", False),
            "StopTxnSampledData": ("Energy.Active.Import.Register", False),
            "NumberOfConnectors": ("1", True),
        }

    # --- calls the server makes -------------------------------------------------------------

    @on(Action.get_configuration)
    def on_get_configuration(self, key=None):
        """Answers from the in-memory configuration; unknown keys are listed as such."""
        wanted = key if key else list(self.configuration)
        known = [
            {"key": k, "readonly": self.configuration[k][1], "value": self.configuration[k][0]}
            for k in wanted
            if k in self.configuration
        ]
        unknown = [k for k in wanted if k not in self.configuration]
        print(f"<= GetConfiguration {key or 'all'}: {len(known)} known, unknown {unknown}")
        return call_result.GetConfiguration(
            configuration_key=known, unknown_key=unknown or None
        )

    @on(Action.change_configuration)
    def on_change_configuration(self, key, value):
        """Accepts writable keys (the command-line interval still paces this run), rejects
        read-only ones, and does not support the rest."""
        if key not in self.configuration:
            status = ConfigurationStatus.not_supported
        elif self.configuration[key][1]:
            status = ConfigurationStatus.rejected
        else:
            self.configuration[key] = (value, False)
            status = ConfigurationStatus.accepted
        print(f"<= ChangeConfiguration {key}={value}: {status.value}")
        return call_result.ChangeConfiguration(status=status)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message, connector_id=None):
        """Accepts the messages this simulator can send; sends them once the answer is out."""
        supported = {
            MessageTrigger.meter_values,
            MessageTrigger.status_notification,
            MessageTrigger.heartbeat,
            MessageTrigger.boot_notification,
        }
        bad_connector = connector_id not in (None, 0, self.connector_id)
        accepted = requested_message in supported and not bad_connector
        status = TriggerMessageStatus.accepted if accepted else TriggerMessageStatus.rejected
        print(f"<= TriggerMessage {requested_message} connector {connector_id}: {status.value}")
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message, connector_id=None):
        """Sends the triggered message (the answer went out first, as OCPP requires)."""
        if connector_id not in (None, 0, self.connector_id):
            return
        try:
            if requested_message == MessageTrigger.meter_values:
                await self.send_meter_values(set(), context="Trigger", elapsed_secs=0)
            elif requested_message == MessageTrigger.status_notification:
                await self.send_status(self.status)
            elif requested_message == MessageTrigger.heartbeat:
                await self.send(call.Heartbeat())
            elif requested_message == MessageTrigger.boot_notification:
                await self.boot()
        except Exception as error:  # reported, the run goes on
            print(f"!! triggered {requested_message} failed: {error}")

    # --- calls the charge point makes -------------------------------------------------------

    async def send(self, payload):
        """One CALL; a CALLERROR or timeout raises, so the run fails loudly."""
        result = await self.call(payload, suppress=False)
        print(f"-> {type(payload).__name__}: {result}")
        return result

    async def boot(self):
        result = await self.send(
            call.BootNotification(
                charge_point_model=self.args.model,
                charge_point_vendor=self.args.vendor,
                charge_point_serial_number=f"SIM-{self.id}",
                firmware_version="simulator-1.0",
            )
        )
        if result.status != RegistrationStatus.accepted:
            raise RuntimeError(f"BootNotification was answered {result.status}, not Accepted")
        return result

    async def send_status(self, status):
        self.status = status
        return await self.send(
            call.StatusNotification(
                connector_id=self.connector_id,
                error_code=ChargePointErrorCode.no_error,
                status=status,
                timestamp=now_iso(),
            )
        )

    async def send_meter_values(self, breaches, context="Sample.Periodic", elapsed_secs=None):
        if elapsed_secs is None:
            elapsed_secs = self.args.interval
        reading = self.meter.reading(breaches, context, elapsed_secs)
        return await self.send(
            call.MeterValues(
                connector_id=self.connector_id,
                transaction_id=self.transaction_id,
                meter_value=[reading],
            )
        )

    async def run(self):
        """The scripted session: boot, status, transaction with MeterValues, stop."""
        await self.boot()
        await self.send_status(ChargePointStatus.available)
        await self.send_status(ChargePointStatus.preparing)
        started = await self.send(
            call.StartTransaction(
                connector_id=self.connector_id,
                id_tag=self.args.id_tag,
                meter_start=math.floor(self.meter.energy_wh),
                timestamp=now_iso(),
            )
        )
        self.transaction_id = started.transaction_id
        id_status = started.id_tag_info["status"]
        print(f"   transaction {self.transaction_id} started, idTag {id_status}")
        failed = None
        if id_status != "Accepted":
            failed = f"StartTransaction answered idTag status {id_status}"
        else:
            await self.send_status(ChargePointStatus.charging)
            for index in range(1, self.args.count + 1):
                await asyncio.sleep(self.args.interval)
                breaches = set(self.args.breach) if index >= self.args.breach_from else set()
                note = f" (breach: {', '.join(sorted(breaches))})" if breaches else ""
                print(f"   MeterValues {index}/{self.args.count}{note}")
                await self.send_meter_values(breaches)
        final = self.meter.reading(set(), "Transaction.End", 0)
        await self.send(
            call.StopTransaction(
                meter_stop=math.floor(self.meter.energy_wh),
                timestamp=now_iso(),
                transaction_id=self.transaction_id,
                reason=Reason.local,
                transaction_data=[final],
            )
        )
        print(f"   transaction {self.transaction_id} stopped at {math.floor(self.meter.energy_wh)} Wh")
        await self.send_status(ChargePointStatus.available)
        if failed:
            raise RuntimeError(failed)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="OCPP 1.6J charge point simulator: boot, transaction, MeterValues, stop.",
        epilog="Breaches: " + "; ".join(f"{k}: {v}" for k, v in BREACH.items()),
    )
    parser.add_argument("url", help="central system base URL, e.g. ws://localhost:8080 "
                        "(/ocpp/<id> is appended unless the URL already ends with the id)")
    parser.add_argument("charge_point_id", help="charge point identity, e.g. TEST-CP-METER")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between MeterValues (default 5)")
    parser.add_argument("--count", type=int, default=12,
                        help="MeterValues messages to send (default 12)")
    parser.add_argument("--breach", action="append", default=[], choices=sorted(BREACH),
                        help="push this reading past its default alert threshold (repeatable)")
    parser.add_argument("--breach-from", type=int, default=2, metavar="N",
                        help="first MeterValues (1-based) carrying the breach (default 2)")
    parser.add_argument("--connector", type=int, default=1, help="connector id (default 1)")
    parser.add_argument("--id-tag", default="SIM-TAG", help="idTag of the transaction")
    parser.add_argument("--meter-start", type=int, default=1000,
                        help="energy register at the start, Wh (default 1000)")
    parser.add_argument("--vendor", default="ocpp-meter", help="BootNotification vendor")
    parser.add_argument("--model", default="simulator", help="BootNotification model")
    parser.add_argument("--password", default=os.environ.get("OCPP_CP_PASSWORD"),
                        help="HTTP Basic password (user = charge point id); default "
                        "$OCPP_CP_PASSWORD; none: no Authorization header")
    parser.add_argument("--cafile", help="CA certificate to trust for wss:// URLs")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for each answer (default 30)")
    parser.add_argument("--quiet", action="store_true",
                        help="print one line per call instead of every raw frame")
    args = parser.parse_args(argv)
    if args.interval < 0 or args.count < 0 or args.breach_from < 1:
        parser.error("--interval and --count must be >= 0, --breach-from >= 1")
    return args


async def main(argv):
    args = parse_args(argv)
    logging.basicConfig(format="   %(message)s", level=logging.WARNING)
    # The library logs every raw frame it sends and receives at INFO.
    logging.getLogger("ocpp").setLevel(logging.WARNING if args.quiet else logging.INFO)
    url = charge_point_url(args.url, args.charge_point_id)
    headers = {}
    if args.password is not None:
        token = base64.b64encode(f"{args.charge_point_id}:{args.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    ssl_context = None
    if url.startswith("wss://"):
        ssl_context = ssl.create_default_context(cafile=args.cafile)
    print(f"Connecting to {url} as {args.charge_point_id} (subprotocol ocpp1.6)")
    try:
        async with websockets.connect(
            url,
            subprotocols=["ocpp1.6"],
            additional_headers=headers,
            ssl=ssl_context,
            open_timeout=args.timeout,
        ) as connection:
            if connection.subprotocol != "ocpp1.6":
                raise RuntimeError(f"server chose subprotocol {connection.subprotocol!r}")
            charge_point = SimulatedChargePoint(args.charge_point_id, connection, args)
            listener = asyncio.create_task(charge_point.start())
            session = asyncio.create_task(charge_point.run())
            done, _ = await asyncio.wait({listener, session}, return_when=asyncio.FIRST_COMPLETED)
            if session not in done:
                session.cancel()
                error = listener.exception()
                raise RuntimeError(f"connection ended during the session: {error}")
            listener.cancel()
            session.result()
    except Exception as error:  # one clear line instead of a traceback
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"Done: {args.count} MeterValues sent for {args.charge_point_id}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
