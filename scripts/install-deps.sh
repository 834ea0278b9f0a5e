#!/usr/bin/env bash
# Installs tinyemo's build and test dependencies from Debian's packages
# (skipping what is already there), and the web page test's npm packages
# (pinned in tests/server/web/package-lock.json) into ${BUILD_DIR:-build}/npm.
# Needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  cmake ninja-build g++ pkg-config clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libhwy-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libjpeg62-turbo-dev libpng-dev zlib1g-dev libwebp-dev libsentencepiece-dev sentencepiece
  libcpp-httplib-dev chromium
)
# Node for the page test; a node installed otherwise (with its own npm) is kept.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
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

# puppeteer-core for tests/server/server_page_test.cpp, exactly as locked; it
# drives Debian's chromium and downloads no browser.
npm_dir="${BUILD_DIR:-build}/npm"
lock=tests/server/web/package-lock.json
if [ ! -f "$npm_dir/node_modules/.package-lock.json" ] || ! cmp -s "$lock" "$npm_dir/package-lock.json"; then
  mkdir -p "$npm_dir"
  cp tests/server/web/package.json "$lock" "$npm_dir/"
  (cd "$npm_dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
