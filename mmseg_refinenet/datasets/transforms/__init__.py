from .frrn_transforms import RandomGamma, RandomTranslate

__all__ = ['RandomGamma', 'RandomTranslate']
