"""pytz.timezone for Infinity's log timestamps (CPU test shim): UTC whatever the name."""
import datetime


def timezone(name):
    return datetime.timezone.utc
