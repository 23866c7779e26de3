"""Scheduled backups: systemd user timers, cron or launchd run `dumpledger backup --type <slot>`
at the times of backup-config.json's schedule."""
