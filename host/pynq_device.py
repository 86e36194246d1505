"""The Ultra96 device: the engine in the PL, driven through PYNQ (imported only here).

Uses, from pynq: `Overlay` (loads the `.bit` with its `.hwh`), `allocate` (physically
contiguous buffers with `flush`/`invalidate`; applied to a slice they maintain only that
byte range), `DefaultIP` (the driver base class; our
subclass binds to the engine's VLNV, `dgfpga.contract.regmap.ENGINE_VLNV`). Completion by polling
ap_done with a finite timeout and short sleeps between reads (`Device.wait`: 50 µs, doubling
to 1 ms; the interrupt line is wired too; polling keeps the runtime free of an asyncio loop).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract.regmap import ENGINE_VLNV
from dgfpga_host.device import Device, DeviceBuffer, DeviceError

__all__ = ["PynqDevice", "engine_driver_class"]

_DRIVER = None


def engine_driver_class(pynq):
    """The DefaultIP subclass bound to the engine's VLNV (made once per pynq module)."""
    global _DRIVER
    if _DRIVER is None or _DRIVER[0] is not pynq:
        class DgEngineIP(pynq.DefaultIP):
            """PYNQ driver of the dgfpga engine (register access only)."""
            bindto = [ENGINE_VLNV]

            def __init__(self, description):
                super().__init__(description=description)
        _DRIVER = (pynq, DgEngineIP)
    return _DRIVER[1]


class _PynqBuffer(DeviceBuffer):
    def __init__(self, buf):
        addr = getattr(buf, "device_address", None)
        if addr is None:
            addr = buf.physical_address
        super().__init__(np.asarray(buf).view(np.uint8).reshape(-1), addr)
        self._buf = buf
        self.coherent = bool(getattr(buf, "coherent", False))   # cacheable: maintained

    # A slice of a pynq buffer is a PynqBuffer of that byte range (its
    # __array_finalize__ carries bo, offset and device address), so flush/invalidate of the
    # slice maintain exactly that range (pynq/buffer.py, PYNQ 2.5+).
    def _flush(self, offset: int, nbytes: int) -> None:
        self._buf[offset:offset + nbytes].flush()

    def _invalidate(self, offset: int, nbytes: int) -> None:
        self._buf[offset:offset + nbytes].invalidate()


class PynqDevice(Device):
    """The engine on the board. `bitfile`: the overlay's .bit (its .hwh beside it)."""

    name = "board"
    timeout_hint = ("reload the overlay (it resets the PL) and check the bundle matches the "
                    "bitstream")

    def __init__(self, bitfile: str, ip_name: Optional[str] = None, pynq_module=None):
        if pynq_module is None:
            try:
                import pynq as pynq_module
            except ImportError:
                raise DeviceError("the board device needs pynq: run on the Ultra96's PYNQ image "
                                  "(pip install dgfpga[board]); use --device csim here") from None
        self.pynq = pynq_module
        bit = Path(bitfile)
        if not bit.is_file():
            raise DeviceError(f"bitstream {bit} not found: copy OUT/overlay/dgfpga.bit and "
                              "dgfpga.hwh from the build-hls project (make all) to the board")
        if not bit.with_suffix(".hwh").is_file():
            raise DeviceError(f"{bit.with_suffix('.hwh')} not found: PYNQ needs the .hwh beside "
                              "the .bit to find the engine")
        engine_driver_class(pynq_module)          # register the driver before loading
        try:
            self.overlay = pynq_module.Overlay(str(bit))
        except Exception as exc:  # pynq raises plain RuntimeError/OSError subclasses
            raise DeviceError(f"could not load overlay {bit}: {exc}") from None
        ips = [n for n, d in self.overlay.ip_dict.items()
               if d.get("type") == ENGINE_VLNV]
        name = ip_name or (ips[0] if ips else None)
        if name is None:
            raise DeviceError(f"overlay {bit.name} has no engine with VLNV {ENGINE_VLNV} "
                              f"(IPs: {sorted(self.overlay.ip_dict)})")
        self.ip = getattr(self.overlay, name)
        self._buffers = []

    def allocate(self, nbytes: int) -> DeviceBuffer:
        buf = self.pynq.allocate(shape=(max(int(nbytes), 1),), dtype=np.uint8)
        buf[:] = 0
        self._buffers.append(buf)
        return _PynqBuffer(buf)

    def write_reg(self, offset: int, value: int) -> None:
        self.ip.write(offset, int(value) & 0xFFFFFFFF)

    def read_reg(self, offset: int) -> int:
        return int(self.ip.read(offset))

    def close(self) -> None:
        for b in self._buffers:
            if hasattr(b, "freebuffer"):
                b.freebuffer()
        self._buffers.clear()
