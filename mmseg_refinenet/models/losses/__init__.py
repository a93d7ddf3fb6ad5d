from .bootstrapped_cross_entropy_loss import (BootstrappedCrossEntropyLoss,
                                              bootstrapped_cross_entropy)

__all__ = ['BootstrappedCrossEntropyLoss', 'bootstrapped_cross_entropy']
