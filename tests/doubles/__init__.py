"""Test doubles of the remote servers gallerysync talks to (see comfyui.py)."""
