"""The ROS 2 layer: thin nodes between messages and the ROS-free core, and what starts them.

One module per node (``camera_node``, ``partitioner_node``, ``edge_node``, ``cloud_node``,
``network_monitor_node``, ``load_monitor_node``); ``common``, ``images`` and ``conversions``
translate messages; ``launch_support`` holds the node list the launch files and ``l2p run``
share; ``launcher``, ``pipeline_run`` and ``observer`` are ``l2p run``; ``dds`` and
``fastdds_local.xml`` keep DDS on this host. Nothing outside this package imports rclpy.
"""
