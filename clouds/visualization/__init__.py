"""Pictures and videos for people: class colours, overlays and legends (used by the
evaluation report and the demo), and the demo's input collection and output writers."""
