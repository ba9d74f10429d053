"""The one shared room: what every Talker service runs on."""
