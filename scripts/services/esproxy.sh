# shellcheck shell=bash
# Secure mode (LOGSHIP_SECURE=1) of scripts/services.sh: a certificate authority made with
# openssl under .services/pki, and Debian's nginx in front of Elasticsearch on
# https://127.0.0.1:9243, terminating TLS and requiring basic auth (user `logship`, password in
# .services/pki/es-password) or an API key (`Authorization: ApiKey <.services/pki/es-api-key>`).
# The Elasticsearch integration distribution has no security module; the client side is what
# the tests exercise. Sourced by scripts/services.sh; not meant to be run alone.

PKI="$SV/pki"
ESPROXY_DIR="$SV/esproxy"
ESPROXY_CONF="$ESPROXY_DIR/nginx.conf"
ESPROXY_PID="$RUN/esproxy.pid"
ESPROXY_LOG="$ESPROXY_DIR/error.log"
ESPROXY_DEFAULT=https://127.0.0.1:9243
ESPROXY_EP="${LOGSHIP_ES_SECURE:-$ESPROXY_DEFAULT}"
ESPROXY_USER=logship

# pki_ensure: the CA, a server certificate for 127.0.0.1 / localhost, a client certificate,
# another CA (for "unknown CA" tests) and the credentials; made once, kept.
pki_ensure() {
  pki_make
  # Added after the first PKI layout: made when missing.
  [ -s "$PKI/kafka-password" ] || (umask 077 && openssl rand -hex 16 >"$PKI/kafka-password")
  [ -s "$PKI/kafka-keystore.pem" ] || (umask 077 && cat "$PKI/server.key" "$PKI/server.crt" >"$PKI/kafka-keystore.pem")
}

pki_make() {
  [ -f "$PKI/.complete" ] && return 0
  command -v openssl >/dev/null 2>&1 || bash "$REPO/scripts/deps.sh"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  (
    cd "$PKI"
    local days=3650 ca
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" -keyout "$ca.key" -out "$ca.crt" \
        -subj "/CN=logship test $ca" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    done
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
      -extfile server.ext -out server.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout client.key -out client.csr -subj /CN=logship-client 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
      -extfile client.ext -out client.crt 2>/dev/null
    openssl rand -hex 16 >es-password
    openssl rand -base64 30 | tr -d '\n' >es-api-key
    printf '%s:%s\n' "$ESPROXY_USER" "$(openssl passwd -apr1 -in es-password)" >htpasswd
    rm -f ./*.csr ./*.ext ./*.srl
    chmod 600 ./*.key es-password es-api-key htpasswd
    touch .complete
  )
}

esproxy_health() {
  port_open "$ESPROXY_EP" || { HEALTH_WHY="nothing accepts TCP connections on $ESPROXY_EP"; return 1; }
  curl -sf -m 8 --cacert "$PKI/ca.crt" -u "$ESPROXY_USER:$(cat "$PKI/es-password" 2>/dev/null)" \
    "$ESPROXY_EP" >/dev/null 2>&1 || { HEALTH_WHY="GET $ESPROXY_EP as $ESPROXY_USER (TLS, basic auth) did not answer 2xx"; return 1; }
}
esproxy_running() { pid_alive "$ESPROXY_PID" "$ESPROXY_CONF"; }
esproxy_start() {
  command -v nginx >/dev/null 2>&1 || bash "$REPO/scripts/deps.sh"
  pki_ensure
  mkdir -p "$ESPROXY_DIR/tmp"
  # nginx's workers read the hashes: a copy outside pki/.
  install -m 644 "$PKI/htpasswd" "$ESPROXY_DIR/htpasswd"
  # The chain presented: the server certificate, then the CA (clients pinning the CA by its
  # fingerprint find it there).
  cat "$PKI/server.crt" "$PKI/ca.crt" >"$ESPROXY_DIR/chain.pem"
  local es="${ES_EP#*://}"
  # As root, nginx's workers would run as www-data, which cannot enter a checkout under a
  # private directory (mktemp -d is mode 700): keep them as the user that runs the services.
  local user_line=""
  if [ "$(id -u)" = 0 ]; then user_line="user root;"; fi
  cat >"$ESPROXY_CONF" <<CONF
# Written by scripts/services.sh (secure mode); rewritten at every start.
$user_line
worker_processes 1;
pid $ESPROXY_DIR/nginx.pid;
error_log $ESPROXY_LOG warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $ESPROXY_DIR/tmp/body;
  proxy_temp_path $ESPROXY_DIR/tmp/proxy;
  fastcgi_temp_path $ESPROXY_DIR/tmp/fastcgi;
  uwsgi_temp_path $ESPROXY_DIR/tmp/uwsgi;
  scgi_temp_path $ESPROXY_DIR/tmp/scgi;
  client_max_body_size 200m;
  map_hash_bucket_size 256;
  map \$http_authorization \$logship_api_key_ok {
    "ApiKey $(cat "$PKI/es-api-key")" 1;
    default 0;
  }
  server {
    listen ${ESPROXY_EP#https://} ssl;
    ssl_certificate $ESPROXY_DIR/chain.pem;
    ssl_certificate_key $PKI/server.key;
    location = /_logship_api_key {
      internal;
      if (\$logship_api_key_ok) { return 204; }
      return 401;
    }
    location / {
      satisfy any;
      auth_basic "elasticsearch";
      auth_basic_user_file $ESPROXY_DIR/htpasswd;
      auth_request /_logship_api_key;
      proxy_pass http://$es;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 120s;
    }
  }
}
CONF
  spawn "$ESPROXY_LOG" "$ESPROXY_PID" nginx -c "$ESPROXY_CONF" -g "daemon off;"
}
esproxy_stop() { stop_pid "$ESPROXY_PID" "$ESPROXY_CONF" esproxy; }
esproxy_wipe() { rm -rf "$ESPROXY_DIR"; }
esproxy_logfile() { echo "$ESPROXY_LOG"; }
