"""The ``l2p`` command: assets, the split engine (cuts, detect, profile), the live pipeline (run, demo,
make-bag) and the simulator (evaluate, train-ppo)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

from l2p_ros.monitoring.link_arrivals import LINK_ARRIVAL_MODES
from l2p_ros.monitoring.link_backlog import LINK_BACKLOG_MODES
from l2p_ros.monitoring.uplink_rtt import DEFAULT_LINK_BUFFER_MS, LINK_RTT_MODES


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="yolov3-tiny",
                        help="yolov3, yolov3-tiny or a Darknet .cfg path (default: yolov3-tiny)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="Darknet .weights (default: the cached pretrained yolov3-tiny)")
    parser.add_argument("--size", type=int, default=416, help="network input side in pixels, a multiple of 32")
    parser.add_argument("--random-weights", action="store_true",
                        help="seeded random weights: for latency/size profiling only, detections are meaningless")


def _load(args):
    from l2p_ros.model.darknet import load_model

    return load_model(args.model, input_size=args.size, weights=args.weights, random_weights=args.random_weights)


def _model_id(args) -> str:
    from l2p_ros.measure.models import model_id

    return model_id(args.model, args.size)


def cmd_fetch_assets(args) -> int:
    from l2p_ros.assets import fetch_assets

    fetch_assets(args.dir)
    return 0


def cmd_cuts(args) -> int:
    from l2p_ros.model.graph import crossing_bytes
    from l2p_ros.model.runner import SplitRunner

    runner = SplitRunner(_load(args))
    model = runner.model
    rows = []
    for cut in runner.graph.chain_cuts():
        rows.append({
            "after_layer": cut.after_layer,
            "name": cut.name(runner.graph.num_layers),
            "crossing": list(cut.crossing),
            "crossing_shapes": {str(k): list(v) for k, v in runner.expected_shapes(cut).items()},
            "fp32_bytes": crossing_bytes(cut, model.output_shapes, runner.input_shape),
        })
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        print(f"{'cut':>6} {'fp32 bytes':>12}  crossing")
        for row in rows:
            print(f"{row['name']:>6} {row['fp32_bytes']:>12,}  {row['crossing']}")
    return 0


def cmd_profile(args) -> int:
    from tqdm import tqdm

    from l2p_ros.assets import SAMPLE_VIDEO, asset_path
    from l2p_ros.measure.models import model_name
    from l2p_ros.measure.profiler import profile_model
    from l2p_ros.model.device import resolve_device
    from l2p_ros.sources import read_video

    resolve_device(args.device, args.precision)  # a bad pair fails before the model loads
    model = _load(args).to_device(args.device, args.precision)
    frame = next((image for _, image in read_video(args.frame_from or asset_path(SAMPLE_VIDEO), [0])), None)
    if frame is None:
        raise ValueError(f"cannot read a frame from {args.frame_from or SAMPLE_VIDEO}")
    profile = profile_model(
        model, frame, device=args.device, threads=args.threads, repeats=args.repeats, warmup=args.warmup,
        model_info={"name": model_name(args.model), "weights": "random" if args.random_weights else
                    str(args.weights or "pretrained"), "precision": args.precision},
        progress_factory=lambda total: tqdm(total=total, desc="profiling", unit="step", file=sys.stderr))
    profile.save(args.out)
    print(f"wrote {args.out}: full pass {profile.measurement['full_pass_ms_median']:.1f} ms median "
          f"({len(profile.layers)} layers, {len(profile.cuts)} cuts)")
    return 0


def _iter_frames(paths: list[Path], max_frames: int | None):
    """(name, BGR image) for every image file and every frame of every video given."""
    import cv2

    from l2p_ros.sources import IMAGE_EXTENSIONS, SourceError, read_video

    count = 0
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            image = cv2.imread(str(path))
            if image is None:  # OpenCV only warns: a file that is not the image it says it is stops here
                raise ValueError(f"cannot decode {path} as an image")
            yield path.name, image
            count += 1
        else:
            frames = 0
            try:
                for index, frame in read_video(path):
                    if max_frames is not None and count >= max_frames:
                        break
                    yield f"{path.name}#{index}", frame
                    count += 1
                    frames += 1
            except SourceError:
                raise ValueError(f"cannot open {path} as a video") from None
            if frames == 0 and (max_frames is None or count < max_frames):
                raise ValueError(f"cannot decode any frame of {path} as a video")
        if max_frames is not None and count >= max_frames:
            return


def cmd_detect(args) -> int:
    import cv2

    from l2p_ros.codec import CodecSpec
    from l2p_ros.codec_spec import CONTEXT_CODER, bottleneck_source
    from l2p_ros.context_coder import refusal as context_refusal
    from l2p_ros.model.device import resolve_device
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.visualize import draw_detections
    from l2p_ros.split import SplitDetector

    resolve_device(args.device, args.precision)  # a bad pair fails before the model loads
    detector = SplitDetector(_load(args), load_class_names(), _model_id(args),
                             score_threshold=args.score_threshold, device=args.device, precision=args.precision)
    if args.codec.startswith("bn:"):  # a learned bottleneck (a name or a path), at its own cut by default
        source, coder = bottleneck_source(args.codec)
        spec = dataclasses.replace(detector.add_bottleneck(source), compression=coder)
        reason = context_refusal(source, detector.bottleneck(spec).context is not None) \
            if coder == CONTEXT_CODER else None
        if reason:
            raise ValueError(f"--codec {args.codec}: {reason}")
        if args.split is None:
            args.split = detector.bottleneck(spec).info.cut_after_layer
    else:
        spec = CodecSpec.parse(args.codec)
    if args.split is not None:
        detector.cut(args.split)  # fail early on a bad cut
    if args.annotate_dir:
        args.annotate_dir.mkdir(parents=True, exist_ok=True)
    for name, image in _iter_frames(args.inputs, args.frames):
        record = {"input": name}
        if args.split is None:
            detections = detector.detect(image)
        else:
            cut = detector.cut(args.split)
            frame = detector.edge(image, cut, spec)
            detections = detector.cloud(frame).detections
            record.update(cut=cut.name(detector.num_layers), codec=str(spec), payload_bytes=frame.payload_bytes)
        record["detections"] = [d.to_dict() for d in detections]
        if args.json:
            print(json.dumps(record))
        else:
            print(f"{name}: " + ", ".join(f"{d.label} {d.score:.2f}" for d in detections))
        if args.annotate_dir:
            out = args.annotate_dir / (name.replace("#", "_") + ".png")
            cv2.imwrite(str(out), draw_detections(image, detections))
    return 0


def cmd_run(args) -> int:
    from l2p_ros.nodes.pipeline_run import print_summary, run_pipeline

    if args.device or args.precision:  # a bad pair fails here, before any node starts
        from l2p_ros.model.device import resolve_device

        resolve_device(args.device or "cpu", args.precision or "fp32")
    _check_run_inputs(args)
    summary = run_pipeline(config=args.config, source=args.source, image_topic=args.image_topic,
                           frames=args.frames, policy=args.policy, rate_hz=args.rate_hz, record=args.record,
                           summary_json=args.summary_json, log_dir=args.log_dir, print_frames=not args.quiet,
                           device=args.device, precision=args.precision, vehicles=args.vehicles,
                           max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                           single_edge_process=args.single_edge_process, codec=args.codec, loop=args.loop,
                           domain_id=args.domain_id, clouds=args.clouds, dds=args.dds,
                           extra=({("cloud_node", "decode_workers"): args.decode_workers}
                                  if args.decode_workers is not None else None))
    if summary["start_error"]:  # nothing ran: the reason, in one line (logs and the summary file kept)
        print(f"l2p run: error: start-up failed: {summary['start_error']} (logs in {summary['logs']})",
              file=sys.stderr)
        return summary["exit_code"]
    print_summary(summary)
    if summary["exit_code"]:
        print(f"l2p run: error: {', '.join(summary['failed_nodes'])} died during the run; the summary above "
              f"still counts every frame (logs in {summary['logs']})", file=sys.stderr)
    return summary["exit_code"]


def _configured(config: Path | None, node: str, name: str):
    """A node parameter as the run's parameter file sets it (None where it does not)."""
    from l2p_ros.nodes.launcher import load_parameters

    return load_parameters(config).get(node, {}).get("ros__parameters", {}).get(name)


def _check_codec(codec: str, policy: str | None) -> None:
    """``--codec`` as the partitioner, edge and cloud would read it (ValueError naming it): a codec
    name, or a learned bottleneck whose file reads, with a policy that can use it at its cut (its
    model is checked by the nodes that load it)."""
    from l2p_ros import context_coder
    from l2p_ros.bottleneck_file import CONTEXT_KEY, read_bottleneck
    from l2p_ros.codec_spec import CONTEXT_CODER, CodecSpec, bottleneck_source
    from l2p_ros.policies.registry import check_tensor_codec

    try:
        if codec.startswith("bn:"):
            source, coder = bottleneck_source(codec)
            info, arrays = read_bottleneck(source)
            reason = context_coder.refusal(source, CONTEXT_KEY in arrays) if coder == CONTEXT_CODER else None
            if reason:
                raise ValueError(reason)
            cut = info.cut_after_layer
            try:
                check_tensor_codec(policy or "", codec)
            except ValueError as error:
                raise ValueError(f"{error} (its cut: --policy fixed:{cut})") from None
            if policy and policy.startswith("fixed:") and policy.split(":")[1] != str(cut):
                raise ValueError(f"its cut is after layer {cut}, the policy {policy} cuts elsewhere: use "
                                 f"--policy fixed:{cut}")
        else:
            CodecSpec.parse(codec)
    except ValueError as error:  # PayloadError and BottleneckError are ValueErrors
        raise ValueError(f"--codec {codec}: {error}") from None


def _check_run_inputs(args) -> None:
    """What the nodes would reject 20-30 s into start-up, refused now in one line (ValueError): the
    source (opened and closed again; a camera device is left to the camera node, which owns it), the
    policy's name, the fleet's clouds and, with ``--dds environment``, that the environment's RMW loads."""
    from l2p_ros.nodes.dds import rmw_load_error
    from l2p_ros.nodes.pipeline_run import cloud_assignment, vehicle_namespaces
    from l2p_ros.policies.registry import check_policy_name
    from l2p_ros.sources import SourceError, device_target, open_source, topic_of

    if args.codec is not None:
        _check_codec(args.codec, args.policy or _configured(args.config, "partitioner_node", "policy"))
    try:
        cloud_assignment(vehicle_namespaces(args.vehicles), args.clouds)
    except ValueError as error:
        raise ValueError(f"--clouds {args.clouds} with --vehicles {args.vehicles}: {error}") from None
    if args.dds == "environment":
        why = rmw_load_error(dict(os.environ))
        if why:
            raise ValueError(f"--dds environment with RMW_IMPLEMENTATION={os.environ.get('RMW_IMPLEMENTATION', '')!r}: "
                             f"{why}")

    if args.source is not None and device_target(str(args.source)) is None and topic_of(str(args.source)) is None:
        try:
            open_source(args.source, image_topic=args.image_topic or "").close()
        except SourceError as error:
            given = args.image_topic if error.parameter == "image_topic" else args.source
            raise ValueError(f"--{error.parameter.replace('_', '-')} {given}: {error}") from None
    if args.policy is not None:
        try:
            check_policy_name(args.policy)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"--policy {args.policy}: {error}") from None
        except ValueError as error:
            raise ValueError(f"--policy {args.policy!r}: {error}") from None


def cmd_train_bottleneck(args) -> int:
    import torch
    from tqdm import tqdm

    from l2p_ros import bottleneck_training as training
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.split import SplitDetector

    defaults = training.DEFAULTS.get(str(args.model))
    if defaults is None and None in (args.cut, args.channels, args.bits) and not args.context_only:
        raise ValueError(f"no defaults for model {args.model}: give --cut, --channels and --bits")
    cut = args.cut if args.cut is not None else getattr(defaults, "cut", None)
    channels = args.channels if args.channels is not None else getattr(defaults, "channels", None)
    bits = args.bits if args.bits is not None else getattr(defaults, "bits", None)
    rate_weight = args.rate_weight if args.rate_weight is not None else defaults.rate_weight if defaults else 0.0
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load(args)
    per_source = training.read_frames_per_source(args.train, args.max_frames)
    if args.val:
        train_frames = [frame for frames in per_source for frame in frames]
        held_out_sources, held_out_per_source = args.val, training.read_frames_per_source(args.val, args.max_frames)
    else:
        held_out_sources = args.train
        train_frames, held_out_per_source = training.split_each_in_time(per_source, args.held_out)
    held_out = [frame for frames in held_out_per_source for frame in frames]
    seen = len(train_frames)
    bar = lambda total, desc: tqdm(total=total, desc=desc, unit="step", file=sys.stderr)  # noqa: E731
    if args.context_only:
        print(f"{seen} training frames, {len(held_out)} held out: fitting the context model of "
              f"{args.context_only}", file=sys.stderr)
        return _fit_context_only(args, model, train_frames, held_out, held_out_sources, held_out_per_source, bar)
    augment = training.AUGMENT_VIEWS if args.augment is None else args.augment
    train_frames = training.augmented_views(train_frames, augment, seed=args.seed)
    print(f"{seen} training frames (+{len(train_frames) - seen} augmented views), {len(held_out)} held out "
          f"({'from --val' if args.val else 'the last part of each source in time'}); cut {cut}, {channels} "
          f"channels, {bits} bits", file=sys.stderr)
    bottleneck, record = training.train(model, _model_id(args), train_frames, cut=cut, channels=channels,
                                        bits=bits, hidden=args.hidden or training.HIDDEN,
                                        decoder_hidden=args.decoder_hidden, epochs=args.epochs,
                                        tail_epochs=args.tail_epochs, rate_weight=rate_weight, seed=args.seed,
                                        context_frames=seen, progress_factory=bar)
    record.update(sources=[str(s) for s in args.train], val_sources=[str(s) for s in args.val or []],
                  frames_seen=seen, augmented_views=augment,
                  command=" ".join(["l2p", *sys.argv[1:]]))
    bottleneck.info.training.update(record)
    path = bottleneck.save(args.out)
    detector = SplitDetector(model, load_class_names(), _model_id(args))
    spec = detector.add_bottleneck(path)
    report = _evaluate_held_out(detector, spec, held_out, held_out_sources, held_out_per_source)
    bottleneck.info.training["held_out"] = report
    bottleneck.save(path)  # again, with its held-out results
    print(json.dumps({"out": str(path), "held_out": report, "wall_time_s": record["wall_time_s"]}, indent=1))
    return 0


def _evaluate_held_out(detector, spec, held_out, held_out_sources, held_out_per_source) -> dict:
    from l2p_ros import bottleneck_training as training

    # Each scene's own figure too: a varied source must not hide a camera's loss.
    sources = [(str(source), len(frames)) for source, frames in zip(held_out_sources, held_out_per_source)]
    return training.evaluate(detector, spec, held_out, sources=sources if len(sources) > 1 else ())


def _fit_context_only(args, model, train_frames, held_out, held_out_sources, held_out_per_source, bar) -> int:
    """``train-bottleneck --context-only FILE``: the file's network unchanged, a context model
    (codec ``bn:NAME+ctx``) fitted on the codes of these training frames (without augmented
    views, as :func:`bottleneck_training.train` fits it), the held-out frames measured again
    (both codecs), written to --out."""
    from l2p_ros import bottleneck_training as training
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.split import SplitDetector

    started = time.perf_counter()
    detector = SplitDetector(model, load_class_names(), _model_id(args))
    bottleneck = detector.bottleneck(detector.add_bottleneck(args.context_only))
    progress = bar(len(train_frames), "codes")
    crossing = training.Teacher(model, bottleneck.info.cut_after_layer).crossings(train_frames, progress.update)
    progress.close()
    bottleneck.context = training.fit_context(bottleneck, crossing)
    bottleneck.info.training["context"] = {"frames": len(train_frames), "alphabet": bottleneck.context.alphabet,
                                           "sources": [str(s) for s in args.train],
                                           "command": " ".join(["l2p", *sys.argv[1:]])}
    path = bottleneck.save(args.out)
    spec = detector.add_bottleneck(path)
    report = _evaluate_held_out(detector, spec, held_out, held_out_sources, held_out_per_source)
    detector.bottleneck(spec).info.training["held_out"] = report
    detector.bottleneck(spec).save(path)
    print(json.dumps({"out": str(path), "held_out": report, "wall_time_s": round(time.perf_counter() - started, 1)},
                     indent=1))
    return 0


def cmd_make_bag(args) -> int:
    from l2p_ros.bag import write_image_bag
    from l2p_ros.sources import open_source

    count = write_image_bag(args.out, open_source(args.source, max_frames=args.frames), storage=args.storage,
                            compressed=args.compressed, topic=args.topic)
    print(f"wrote {count} frames to {args.out} ({args.storage}, topic {args.topic})")
    return 0


def cmd_demo(args) -> int:
    from l2p_ros.demo import run_demo

    if args.shaped_link:
        from l2p_ros.demo import run_shaped_link_demo

        return run_shaped_link_demo(out_dir=args.out or Path("out/demo-shaped"), policy=args.policy,
                                    bottlenecks=args.bottlenecks)
    if args.bottlenecks:
        raise ValueError("--bottlenecks needs --shaped-link: on the unshaped link the image always wins")
    return run_demo(frames=args.frames, out_dir=args.out or Path("out/demo"), policy=args.policy)


def cmd_evaluate(args) -> int:
    from l2p_ros.simulation.evaluation import evaluate, resolve_scenario
    from l2p_ros.simulation.report import write_report

    policies = [name.strip() for name in args.policies.split(",") if name.strip()] if args.policies else None
    extra = _load_ppo_policies(args.ppo, args.model) if args.ppo else None
    scenario = resolve_scenario(args.trace or args.scenario)
    if args.image_codec:
        scenario = dataclasses.replace(scenario, image_codec=args.image_codec)
    fleet = None
    if args.fleet_vehicles:
        from l2p_ros.policies.cloud_batching import CloudBatching, CloudShare

        from l2p_ros.policies.cloud_batching import H200_CURVES

        fleet = CloudShare(args.fleet_vehicles, args.fps or scenario.fps, args.cloud_max_batch,
                           CloudBatching.load(args.cloud_batching or H200_CURVES))
    more = {} if args.hindsight_s is None else {"hindsight_s": args.hindsight_s}
    view = {"link_rtt": args.link_rtt, "link_buffer_ms": args.link_buffer_ms, "calibrate_edge": args.calibrate_edge,
            "link_arrivals": args.link_arrivals, "link_backlog": args.link_backlog}
    evaluation = evaluate(scenario, args.model, policies,
                          args.minutes, args.seed, edge_profile=args.edge_profile, cloud_profile=args.cloud_profile,
                          cloud_speed_factor=args.cloud_speed_factor, edge_speed_factor=args.edge_speed_factor,
                          fps=args.fps, deadline_ms=args.deadline_ms,
                          frames_per_clip=args.video_frames, extra_policies=extra, bottlenecks=args.bottlenecks,
                          frame_costs=args.frame_costs, fleet=fleet, simulation_options=view, **more,
                          log=lambda text: print(text, file=sys.stderr))
    paths = write_report(evaluation, args.out)
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def _add_world_args(p) -> None:
    """The simulated world's model, profiles, video and frame costs (``evaluate`` and ``train-ppo`` alike)."""
    p.add_argument("--model", default="yolov3-tiny", help="yolov3, yolov3-tiny or a Darknet .cfg path")
    p.add_argument("--edge-profile", type=Path, default=None, help="default: measured on this host")
    p.add_argument("--edge-speed-factor", type=_positive_float, default=1.0,
                   help="derive the edge at this times the edge profile's speed, labelled derived "
                        "(e.g. 0.25 for an edge a quarter as fast; default 1: as measured)")
    p.add_argument("--cloud-profile", type=Path, default=None,
                   help="default: derived from the measured edge profile")
    p.add_argument("--cloud-speed-factor", type=_positive_float, default=20.0,
                   help="cloud speed / measured edge profile speed when derived (default 20)")
    p.add_argument("--video-frames", type=int, default=60, help="real frames measured per clip (cached)")
    p.add_argument("--bottlenecks", nargs="*", default=(), metavar="NAME",
                   help="learned bottlenecks (models/bottleneck/ names or paths; NAME+ctx: its codes range-coded "
                        "with its context model) the policies may choose")
    p.add_argument("--frame-costs", default="committed", metavar="FILE|committed|none",
                   help="measured encode, decode, complexity and decision times the simulator and the policies "
                        "charge: a frame-costs file, 'committed' (default: the repository's for the model, if any) "
                        "or 'none'")
    p.add_argument("--image-codec", type=_image_codec, default=None,
                   help="image offload's codec (default: the scenario's, jpeg-q75; jpeg-full-q75 sends the "
                        "camera-size image, as every figure written before network-resolution offload did)")


def _at_least(convert, minimum: float, strict: bool = False):
    """An argparse type: ``convert`` the text and require a finite value ``>= minimum`` (``> minimum``
    when ``strict``); the error says which."""
    def parse(text: str):
        value = convert(text)
        if not (math.isfinite(value) and (value > minimum if strict else value >= minimum)):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text}")
        return value

    parse.__name__ = convert.__name__  # argparse names it in "invalid float value: 'x'"
    return parse


def _image_codec(text: str) -> str:
    """An argparse type: an image codec the simulator's video table measures."""
    from l2p_ros.codec_spec import IMAGE_CODECS

    if text not in IMAGE_CODECS:
        raise argparse.ArgumentTypeError(f"{text!r} is not an image codec the simulator measures "
                                         f"({', '.join(IMAGE_CODECS)})")
    return text


_positive_float = _at_least(float, 0, strict=True)
_nonnegative_float = _at_least(float, 0)
_nonnegative_int = _at_least(int, 0)
_positive_int = _at_least(int, 1)


def _domain_id(text: str) -> int:
    """An argparse type: a DDS domain id ROS 2 accepts on every transport (0..232)."""
    value = _nonnegative_int(text)
    if value > 232:
        raise argparse.ArgumentTypeError(f"{value} is above 232, the largest domain id ROS 2 can use")
    return value


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="simulate policies on a scenario or trace; write results.json, table, plots")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--scenario", default="l2p-paper",
                        help="l2p-paper, three-tier-throttle or three-tier-backhaul (default: l2p-paper)")
    source.add_argument("--trace", type=Path, default=None, help="CSV time_s,bandwidth_mbps[,rtt_ms][,edge_load]")
    p.add_argument("--policies", default=None, help="comma list, e.g. greedy,dads,oracle (default: edge-only, "
                   "cloud-only, static-optimal, best-fixed, heuristic, greedy, dads, dnnsplit, score, oracle)")
    p.add_argument("--minutes", type=float, default=None, help="simulated minutes (default: the scenario's)")
    p.add_argument("--seed", type=int, default=0)
    _add_world_args(p)
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the scenario's)")
    p.add_argument("--deadline-ms", type=float, default=None, help="deadline (default: the scenario's)")
    p.add_argument("--ppo", default=None, help="trained policy files (l2p train-ppo), comma separated; each is "
                   "reported under its own name (ppo, ppo-resource-only, ...)")
    p.add_argument("--fleet-vehicles", type=_positive_int, default=None,
                   help="the cloud is shared by this many vehicles (this one included) sending at the run's fps, "
                        "and batches their frames; the simulator and the policies' cost model both know it")
    p.add_argument("--cloud-max-batch", type=_positive_int, default=1, help="with --fleet-vehicles: the batch limit")
    p.add_argument("--cloud-batching", type=Path, default=None,
                   help="with --fleet-vehicles: measured batch curves (bench/cloud_batching.py; default: the "
                        "H200's for yolov3-tiny)")
    p.add_argument("--hindsight-s", type=_nonnegative_float, default=None,
                   help="seconds from the start over which the hindsight optimum (every queue accounted) is found "
                        "and each policy compared with it (default 20; 0: none)")
    p.add_argument("--link-rtt", choices=LINK_RTT_MODES, default="smoothed",
                   help="the uplink RTT the policies are charged, as the partitioner's link_rtt: smoothed (default "
                        "here), floor, or own-queue (the live default: the floor, and each option the queue its "
                        "own frames would leave on the link)")
    p.add_argument("--link-buffer-ms", type=_positive_float, default=DEFAULT_LINK_BUFFER_MS,
                   help="with --link-rtt own-queue: how long a full uplink holds a frame until a deeper queue is "
                        "seen (default %(default)g)")
    p.add_argument("--link-arrivals", choices=LINK_ARRIVAL_MODES, default="poisson",
                   help="with --link-rtt own-queue: how irregularly frames reach the uplink, as the partitioner's "
                        "link_arrivals: poisson (default here: M/D/1's wait) or measured (the live default: "
                        "Kingman's G/D/1 wait with the offloaded frames' measured intervals)")
    p.add_argument("--link-backlog", choices=LINK_BACKLOG_MODES, default="off",
                   help="with --link-rtt own-queue: off (default, here and live) or decided: each option's own "
                        "queue capped at the backlog the partitioner's own decisions leave on the link now")
    p.add_argument("--calibrate-edge", action="store_true",
                   help="fold how much longer the edge took than predicted into the load the policies see, as "
                        "the partitioner's calibrate_edge (the live default)")
    p.add_argument("--out", type=Path, default=Path("out/evaluate"))
    p.set_defaults(func=cmd_evaluate)


def _load_ppo_policies(files: str, model: str) -> dict:
    """``--ppo a.npz,b.npz``: the policies by report name (a repeated name gets the file's stem),
    each checked to fit ``model``."""
    from l2p_ros.policies.learned import LearnedPolicy
    from l2p_ros.measure.models import model_graph

    num_layers = model_graph(model).num_layers
    policies = {}
    for file in filter(None, (f.strip() for f in files.split(","))):
        policy = LearnedPolicy.load(file, num_layers)
        name = policy.name if policy.name not in policies else f"{policy.name}:{Path(file).stem}"
        policy.name = name
        policies[name] = policy
    return policies


def cmd_train_ppo(args) -> int:
    import shlex

    from l2p_ros.simulation.scenarios import get_scenario
    from l2p_ros.simulation.training import PpoConfig, train_ppo
    from l2p_ros.simulation.world import build_world

    scenario = get_scenario(args.scenario)
    if args.image_codec:
        scenario = dataclasses.replace(scenario, image_codec=args.image_codec)
    world = build_world(args.model, edge_profile=args.edge_profile, cloud_profile=args.cloud_profile,
                        cloud_speed_factor=args.cloud_speed_factor, edge_speed_factor=args.edge_speed_factor,
                        frames_per_clip=args.video_frames, bottlenecks=args.bottlenecks,
                        log=lambda text: print(text, file=sys.stderr))
    config = PpoConfig(**({"timesteps": args.timesteps} if args.timesteps else {}), seed=args.seed,
                       torch_threads=args.threads)
    # Recorded in the file: the command that reproduces it, every setting spelled out.
    command = ["l2p", "train-ppo", "--scenario", scenario.name, "--ablation", args.ablation,
               "--timesteps", str(config.timesteps), "--seed", str(config.seed), "--threads", str(args.threads),
               "--model", str(args.model), "--edge-speed-factor", f"{args.edge_speed_factor:g}",
               "--cloud-speed-factor", f"{args.cloud_speed_factor:g}",
               "--video-frames", str(args.video_frames), "--frame-costs", str(args.frame_costs),
               "--image-codec", scenario.image_codec, "--out", str(args.out)]
    for flag, path in (("--edge-profile", args.edge_profile), ("--cloud-profile", args.cloud_profile)):
        command += [flag, str(path)] if path else []
    command += ["--bottlenecks", *args.bottlenecks] if args.bottlenecks else []
    policy = train_ppo(world, scenario, args.ablation, config, command=shlex.join(command),
                       frame_costs=args.frame_costs,
                       log=lambda text: print(text, file=sys.stderr)).policy
    path = policy.save(args.out)
    training = policy.metadata["training"]
    check = training["verification"]
    print(f"wrote {path} ({policy.name}): {training['timesteps']} timesteps in {training['wall_time_s']:.0f} s "
          f"({training['cpu_time_s']:.0f} s CPU); "
          f"numpy inference matches stable-baselines3 on {check['same_action']}/{check['observations']} observations")
    return 0


def _add_train_ppo_parser(sub) -> None:
    p = sub.add_parser("train-ppo", help="train the learning-to-partition PPO policy in the simulator")
    p.add_argument("--scenario", default="l2p-paper", help="scenario to train on (default: l2p-paper)")
    p.add_argument("--ablation", default="full",
                   help="observation: full, or the paper's ablations resource-only, no-network, complexity-only")
    p.add_argument("--timesteps", type=int, default=None, help="simulated frames to train on (default: 2000000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    _add_world_args(p)
    p.add_argument("--out", type=Path, required=True, help="policy file to write (.npz)")
    p.set_defaults(func=cmd_train_ppo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2p", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch-assets", help="fetch and verify pretrained YOLOv3-tiny and the sample media")
    p.add_argument("--dir", type=Path, default=None, help="cache directory (default: $L2P_CACHE_DIR or XDG cache)")
    p.set_defaults(func=cmd_fetch_assets)

    p = sub.add_parser("cuts", help="every cut with its crossing tensors and bytes")
    _add_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cuts)

    p = sub.add_parser("profile", help="measure per-layer latency and per-cut payload sizes on this machine")
    _add_model_args(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="fp16: CUDA only")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--frame-from", type=Path, default=None, help="image or video for payload sizes (default: sample video)")
    p.add_argument("--out", type=Path, required=True, help="profile YAML to write")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("detect", help="detect objects in images or videos, optionally through a split")
    _add_model_args(p)
    p.add_argument("--split", default=None, help="cut: a layer index, 'edge', 'cloud' or 'dag:i,j,..'")
    p.add_argument("--codec", default="fp32", help="fp32, fp16, int8-channel+zstd, jpeg-q75 (image at network "
                   "resolution), jpeg-full-q75 (at camera size), jpeg-dnn-q85 (network resolution, 4:4:4, quantization "
                   "tables for a detector: more detections per byte), bn:NAME (a learned bottleneck in "
                   "models/bottleneck/, or bn:PATH; runs at its own cut unless --split says otherwise; "
                   "bn:NAME+ctx: its codes range-coded with its context model, fewer bytes), ...")
    p.add_argument("--score-threshold", type=float, default=0.25)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both tiers of a --split run there)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="fp16: CUDA only")
    p.add_argument("--frames", type=_positive_int, default=None, help="stop after this many frames")
    p.add_argument("--annotate-dir", type=Path, default=None, help="write annotated PNGs here")
    p.add_argument("--json", action="store_true", help="one JSON object per frame")
    p.add_argument("inputs", type=Path, nargs="+")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("train-bottleneck", help="distil a learned bottleneck codec on unlabeled video")
    _add_model_args(p)
    p.add_argument("--train", nargs="+", required=True, help="videos, image folders or bags to distil on")
    p.add_argument("--val", nargs="+", default=None,
                   help="held-out sources (default: the last --held-out share of each training source in time)")
    p.add_argument("--held-out", type=float, default=0.2, help="share held out without --val (default 0.2)")
    p.add_argument("--max-frames", type=_positive_int, default=300, help="frames used per source, spread over it")
    p.add_argument("--cut", type=int, default=None, help="cut after this layer (default per model: tiny 7)")
    p.add_argument("--channels", type=_positive_int, default=None, help="code channels (default per model)")
    p.add_argument("--bits", type=_positive_int, default=None, help="bits per code, 1..8 (default per model)")
    p.add_argument("--hidden", type=_positive_int, default=None,
                   help="the encoder's hidden width (default: bottleneck_training.HIDDEN)")
    p.add_argument("--decoder-hidden", type=_positive_int, default=None,
                   help="the decoder's hidden width (default: twice --hidden); wider keeps more detections "
                        "outside the training scenes and costs the receiver more (docs/benchmarks.md)")
    p.add_argument("--augment", type=_nonnegative_int, default=None,
                   help="random crops/mirrors added per training frame (default: bottleneck_training.AUGMENT_VIEWS)")
    p.add_argument("--rate-weight", type=_nonnegative_float, default=None,
                   help="loss per estimated kilobyte of codes per frame (default per model)")
    p.add_argument("--epochs", type=_nonnegative_int, default=40, help="epochs on the crossing tensor alone")
    p.add_argument("--tail-epochs", type=_nonnegative_int, default=15, help="epochs through the frozen tail")
    p.add_argument("--threads", type=_nonnegative_int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--context-only", default=None, metavar="BOTTLENECK",
                   help="no training: fit only the context model (codec bn:NAME+ctx) of this existing bottleneck "
                        "(a name or a path) on the training frames, measure it held out, and write it to --out")
    p.add_argument("--out", type=Path, required=True, help="the bottleneck file to write (.safetensors)")
    p.set_defaults(func=cmd_train_bottleneck)

    p = sub.add_parser("run", help="start the node set as separate processes (no ros2cli needed)")
    p.add_argument("--config", type=Path, default=None, help="parameter YAML (default: config/pipeline.yaml)")
    p.add_argument("--source", default=None, help="V4L2 device, video, image folder or rosbag2 bag")
    p.add_argument("--image-topic", default=None, help="bag sources: the image topic to replay")
    p.add_argument("--frames", type=_nonnegative_int, default=0, help="stop after N frames (0 = until the source ends)")
    p.add_argument("--loop", action="store_true",
                   help="start the source over at its end, until --frames or Ctrl-C (a soak); the observer then "
                        "keeps whole records of the last minute only, so memory stays flat")
    p.add_argument("--rate-hz", type=_nonnegative_float, default=None,
                   help="camera rate, 0 = as fast as possible (default from the YAML)")
    p.add_argument("--policy", default=None, help="partitioning policy (default from the YAML)")
    p.add_argument("--codec", default=None, help="codec of tensor cuts (default from the YAML), e.g. "
                   "int8-channel+zstd, or bn:NAME / bn:PATH for a learned bottleneck (with --policy fixed:K at its cut)")
    p.add_argument("--record", type=Path, default=None, help="record detections, decisions and stats to this bag")
    p.add_argument("--summary-json", type=Path, default=None, help="write the summary and timeline here")
    p.add_argument("--log-dir", type=Path, default=None,
                   help="folder for the nodes' logs and parameter files (a previous run's logs there are "
                        "replaced; default: a new folder under the system's temporary directory, printed)")
    p.add_argument("--quiet", action="store_true", help="no per-frame lines")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N for the edge and cloud nodes (default from the YAML)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default=None, help="fp16: CUDA only (default from the YAML)")
    p.add_argument("--vehicles", type=_positive_int, default=1,
                   help="a fleet: this many edge sets (namespaces v0, v1, ...) sharing one cloud node")
    p.add_argument("--max-batch", type=_positive_int, default=None,
                   help="the cloud finishes up to this many frames sharing a cut in one pass (default from the YAML)")
    p.add_argument("--max-wait-ms", type=float, default=None,
                   help="how long a batch's first frame waits for more (default from the YAML)")
    p.add_argument("--decode-workers", type=_positive_int, default=None,
                   help="threads the cloud decodes a batch's frames on (default from the YAML)")
    p.add_argument("--domain-id", type=_domain_id, default=None,
                   help="DDS domain of the run's nodes (default: $ROS_DOMAIN_ID, else one no other l2p run on "
                        "this host uses, printed at start)")
    p.add_argument("--clouds", type=_positive_int, default=1,
                   help="with --vehicles: this many cloud nodes share the fleet, each serving its own vehicles "
                        "(v0 -> the first, v1 -> the second, ...)")
    p.add_argument("--dds", choices=("local", "environment"), default="local",
                   help="local: shared memory only, nothing leaves this host (default); environment: the "
                        "environment's RMW_IMPLEMENTATION and DDS configuration (a Fast DDS profile, rmw_zenoh, "
                        "...), for a graph across hosts")
    p.add_argument("--single-edge-process", action="store_true",
                   help="each vehicle's edge-side nodes in one process (edge_container): one DDS participant, "
                        "torch loaded once")
    p.set_defaults(func=cmd_run)

    from l2p_ros.testbed.commands import add_testbed_parser

    add_testbed_parser(sub)

    p = sub.add_parser("make-bag", help="write a rosbag2 image bag from a video, image folder or device")
    p.add_argument("source", help="video file, image folder or V4L2 device")
    p.add_argument("out", type=Path, help="bag directory to create")
    p.add_argument("--frames", type=_nonnegative_int, default=0, help="at most this many frames (0 = all)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage (JPEG) instead of Image")
    p.add_argument("--topic", default="/camera/image_raw")
    p.set_defaults(func=cmd_make_bag)

    p = sub.add_parser("demo", help="the live pipeline on the sample video with pretrained YOLOv3-tiny")
    p.add_argument("--frames", type=_positive_int, default=200)
    p.add_argument("--policy", default=None, help="partitioning policy (default from config/pipeline.yaml)")
    p.add_argument("--out", type=Path, default=None, help="default out/demo (out/demo-shaped with --shaped-link)")
    p.add_argument("--shaped-link", action="store_true",
                   help="on the testbed (root): the uplink steps 40 -> 1 -> 40 Mbit/s and the cut follows it")
    p.add_argument("--bottlenecks", nargs="*", default=(), metavar="NAME",
                   help="with --shaped-link: learned bottlenecks the policy may choose (e.g. sample-scenes: on the "
                        "slow link its cut, an interior one, can win)")
    p.set_defaults(func=cmd_demo)

    _add_evaluate_parser(sub)
    _add_train_ppo_parser(sub)
    return parser


# What each command writes: checked before any work starts, so a run is not lost to a bad path at
# its end. "file": its folder must be creatable and the file writable; "new_dir": must not exist yet
# (a bag); "dir": a folder to create or reuse.
OUTPUTS = {"run": (("summary_json", "file"), ("record", "new_dir"), ("log_dir", "dir")),
           "make-bag": (("out", "new_dir"),),
           "profile": (("out", "file"),), "evaluate": (("out", "dir"),), "train-ppo": (("out", "file"),),
           "train-bottleneck": (("out", "file"),), "demo": (("out", "dir"),)}


def check_output(path: Path, kind: str) -> None:
    """ValueError naming ``path`` when the command could not write it there."""
    import os

    if kind == "new_dir" and path.exists():
        raise ValueError(f"{path} already exists; choose a new path")
    if kind == "file" and path.is_dir():
        raise ValueError(f"{path} is a folder, not a file")
    # The missing folders are created to prove they can be (permissions alone do not tell: root may
    # "write" /proc), then removed again: a command refused later must leave nothing behind, and
    # its writer creates them when it writes.
    folder = (path if kind == "dir" else path.parent).absolute()
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except OSError as error:
        raise ValueError(f"cannot create the folder for {path}: {error.strerror or error}") from None
    finally:
        for created in missing:  # deepest first
            try:
                created.rmdir()
            except OSError:
                pass
    if not writable:
        raise ValueError(f"cannot write {path}: {folder} is not writable")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from l2p_ros.assets import AssetError
    from l2p_ros.codec import PayloadError
    from l2p_ros.model.cfg import CfgError
    from l2p_ros.model.graph import CutError
    from l2p_ros.testbed.system import TestbedError

    try:
        for attribute, kind in OUTPUTS.get(args.command, ()):
            if getattr(args, attribute, None) is not None:
                check_output(Path(getattr(args, attribute)), kind)
        return args.func(args)
    except (AssetError, PayloadError, CfgError, CutError, FileNotFoundError, ValueError, TestbedError) as error:
        print(f"l2p {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
