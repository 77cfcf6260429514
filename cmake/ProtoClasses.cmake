# trainopt_proto_classes(PROTO OUT_VAR): generates the C++ classes of the
# schema PROTO (a path under include/trainopt/<Dir>/) into
# ${PROJECT_BINARY_DIR}/include/trainopt/<Dir>, so sources include them as
# "trainopt/<Dir>/<name>.pb.h"; OUT_VAR gets the generated .pb.cc.
function(trainopt_proto_classes proto out_var)
  get_filename_component(dir ${proto} DIRECTORY)
  get_filename_component(name ${proto} NAME_WE)
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/include ${dir})
  set(out ${PROJECT_BINARY_DIR}/include/${rel})
  file(MAKE_DIRECTORY ${out})
  add_custom_command(
    OUTPUT ${out}/${name}.pb.cc ${out}/${name}.pb.h
    # Compiled under its path from include/ (trainopt/<Dir>/<name>.proto):
    # libprotobuf registers every schema by that name once per process, and a
    # bare "graph.proto" clashes with other libraries' (PyTorch's).
    COMMAND protobuf::protoc --proto_path=${PROJECT_SOURCE_DIR}/include
            --cpp_out=${PROJECT_BINARY_DIR}/include ${proto}
    DEPENDS ${proto}
    COMMENT "Generating the classes of ${rel}/${name}.proto")
  set(${out_var} ${out}/${name}.pb.cc PARENT_SCOPE)
endfunction()
