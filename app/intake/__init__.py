"""Public intake: residents report disputes by scanning a village's QR code (一码解纠纷)."""
