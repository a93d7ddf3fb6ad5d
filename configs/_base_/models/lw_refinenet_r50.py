# Light-Weight RefineNet (Nekrasov et al., BMVC 2018) as a configuration of
# the same head: 1x1 adaptation, fusion and CRP convs, no RCUs, no dropout.
_base_ = ['./refinenet_r50.py']
model = dict(decode_head=dict(adapt_kernel_size=1,
                              fusion_kernel_size=1,
                              crp_kernel_size=1,
                              num_input_rcus=0,
                              num_output_rcus=0,
                              input_dropout_ratio=0.0,
                              dropout_ratio=0.0))
