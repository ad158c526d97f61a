# Sourced by ./jdiffusion and ./run-tests: points JAVA_HOME at a JDK 25 or newer, or explains what to install.
jd_java_major() {  # prints the feature version of the JDK at $1, or nothing
  local rel="$1/release"
  [ -x "$1/bin/java" ] || return 0
  if [ -f "$rel" ]; then
    sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$rel"
  else
    "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
  fi
}
jd_find_jdk() {
  local cand major
  for cand in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*-25* /usr/lib/jvm/java-25* /usr/lib/jvm/* \
              /opt/java/* /opt/jdk* "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/* /Library/Java/JavaVirtualMachines/*/Contents/Home; do
    [ -n "$cand" ] && [ -d "$cand" ] || continue
    major=$(jd_java_major "$cand")
    if [ -n "$major" ] && [ "$major" -ge 25 ]; then
      printf '%s\n' "$cand"
      return 0
    fi
  done
  return 1
}
if ! JAVA_HOME=$(jd_find_jdk); then
  echo "jdiffusion needs a JDK 25 or newer (it uses the Vector API and the FFM API)." >&2
  echo "Install one (for example Temurin 25: apt-get install temurin-25-jdk, or from adoptium.net) and set JAVA_HOME to it." >&2
  exit 3
fi
export JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
