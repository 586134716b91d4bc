# Per-call binaries start once per pod (tern-cni on every sandbox ADD/DEL/CHECK, tern-init in
# every pod start), and every shared library they load costs start-up time on each call. A
# target opts in with
#   set_target_properties(x PROPERTIES TERN_STATIC_DEPS ON)
# and then links OpenSSL, yaml-cpp, libnl, libstdc++ and libgcc statically; everything else, and
# every other target, links them shared. The switch is a generator expression on the target
# being linked, so the libraries in core/ are built once for both.
find_library(TERN_SSL_A NAMES libssl.a)
find_library(TERN_CRYPTO_A NAMES libcrypto.a)
find_library(TERN_YAML_A NAMES libyaml-cpp.a)
find_library(TERN_NL_A NAMES libnl-3.a)
find_library(TERN_NL_ROUTE_A NAMES libnl-route-3.a)

set(_tern_static "$<BOOL:$<TARGET_PROPERTY:TERN_STATIC_DEPS>>")
set(_tern_shared "$<NOT:${_tern_static}>")
if(NOT TERN_SSL_A OR NOT TERN_CRYPTO_A OR NOT TERN_YAML_A OR NOT TERN_NL_A OR NOT TERN_NL_ROUTE_A OR TERN_SANITIZE)
  # No archives (or a sanitizer build): the property changes nothing.
  set(_tern_static "0")
  set(_tern_shared "1")
endif()

add_library(tern_dep_openssl INTERFACE)
target_link_libraries(tern_dep_openssl INTERFACE
  "$<${_tern_shared}:OpenSSL::SSL>" "$<${_tern_shared}:OpenSSL::Crypto>"
  "$<${_tern_static}:${TERN_SSL_A}>" "$<${_tern_static}:${TERN_CRYPTO_A}>" "$<${_tern_static}:${CMAKE_DL_LIBS}>")
target_include_directories(tern_dep_openssl INTERFACE ${OPENSSL_INCLUDE_DIR})

add_library(tern_dep_yaml INTERFACE)
get_target_property(_tern_yaml_inc yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
target_link_libraries(tern_dep_yaml INTERFACE "$<${_tern_shared}:yaml-cpp>" "$<${_tern_static}:${TERN_YAML_A}>")
if(_tern_yaml_inc)
  target_include_directories(tern_dep_yaml INTERFACE ${_tern_yaml_inc})
endif()

add_library(tern_dep_libnl INTERFACE)
target_link_libraries(tern_dep_libnl INTERFACE
  "$<${_tern_shared}:PkgConfig::LIBNL>" "$<${_tern_static}:${TERN_NL_ROUTE_A}>" "$<${_tern_static}:${TERN_NL_A}>")
target_include_directories(tern_dep_libnl INTERFACE ${LIBNL_INCLUDE_DIRS})

add_library(tern_dep_runtime INTERFACE)
target_link_options(tern_dep_runtime INTERFACE "$<${_tern_static}:-static-libstdc++>" "$<${_tern_static}:-static-libgcc>")
target_link_libraries(tern_dep_openssl INTERFACE tern_dep_runtime)
