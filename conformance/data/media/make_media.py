"""Make the media fixtures of the audio/video cases (001 Audio and video), offline and reproducibly.

    python conformance/data/media/make_media.py [FFMPEG]

FFMPEG defaults to `ffmpeg` on PATH; without one, `pip install imageio-ffmpeg` ships a static binary
(`python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"`). The outputs are committed, so
the suite itself never needs ffmpeg. Clips are one second and a few kilobytes: a live run pays for media tokens.
  audio.mp3  1 s, 440 Hz sine, mono 16 kHz, 32 kbit/s MP3       (documented mime type audio/mp3)
  audio.wav  1 s, 440 Hz sine, mono 8 kHz, 16-bit PCM WAV       (made by the wave module, no ffmpeg)
  video.mp4  1 s, 64x64 test pattern, 10 fps, H.264 baseline, no audio, faststart
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

HERE = Path(__file__).parent
QUIET = ["-hide_banner", "-loglevel", "error", "-y"]
OUT = ["-map_metadata", "-1", "-fflags", "+bitexact"]


def make_wav(path: Path, rate: int = 8000, seconds: float = 1.0, hz: float = 440.0) -> None:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def main(argv: list[str]) -> int:
    ffmpeg = argv[1] if len(argv) > 1 else shutil.which("ffmpeg")
    make_wav(HERE / "audio.wav")
    if not ffmpeg:
        print("no ffmpeg: made audio.wav only", file=sys.stderr)
        return 1
    subprocess.run([ffmpeg, *QUIET, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=1",
                    "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", "-flags:a", "+bitexact", *OUT,
                    str(HERE / "audio.mp3")], check=True)
    subprocess.run([ffmpeg, *QUIET, "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1",
                    "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-preset", "veryslow",
                    "-crf", "35", "-flags:v", "+bitexact", "-movflags", "+faststart", "-an", *OUT,
                    str(HERE / "video.mp4")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
