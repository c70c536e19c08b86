"""What people drive the system with: the SDK, the CLI, the monitor."""
