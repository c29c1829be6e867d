"""Darknet models, their cut graph and split execution (ROS-free)."""
