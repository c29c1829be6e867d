from glob import glob

from setuptools import find_packages, setup

PACKAGE = "l2p_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={"l2p_ros.model": ["cfg/*.cfg", "cfg/*.names"],
                  "l2p_ros.nodes": ["fastdds_local.xml", "fastdds_local_small.xml", "fastdds_local_edge.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.csv")),
        (f"share/{PACKAGE}/models/bottleneck", glob("models/bottleneck/*.safetensors")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="l2p_ros developers",
    maintainer_email="dev@l2p-ros.invalid",
    description="Adaptive split inference of YOLOv3 between a vehicle's edge computer and a cloud GPU server.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "l2p = l2p_ros.cli:main",
            "camera_node = l2p_ros.nodes.camera_node:main",
            "partitioner_node = l2p_ros.nodes.partitioner_node:main",
            "network_monitor_node = l2p_ros.nodes.network_monitor_node:main",
            "load_monitor_node = l2p_ros.nodes.load_monitor_node:main",
            "edge_node = l2p_ros.nodes.edge_node:main",
            "cloud_node = l2p_ros.nodes.cloud_node:main",
            "probe_echo_node = l2p_ros.nodes.probe_echo:main",
            "edge_container = l2p_ros.nodes.edge_container:main",
        ],
    },
)
