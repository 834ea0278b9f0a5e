#!/usr/bin/env bash
# Installs tinyemo's build and test dependencies from Debian's packages
# (skipping what is already there). Needs root or sudo.
set -euo pipefail
packages=(
  cmake ninja-build g++ pkg-config clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libhwy-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libjpeg62-turbo-dev libpng-dev zlib1g-dev libwebp-dev libsentencepiece-dev sentencepiece
  libcpp-httplib-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
