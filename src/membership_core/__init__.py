"""membership_core."""
